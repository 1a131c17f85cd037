import json

import torch

from asr.decode import greedy_ids, read_hypotheses, write_hypotheses
from asr.manifest import read_manifest
from speech import DIGITS


def one_hot_log_probs(paths: list[list[int]], vocab: int = 5) -> torch.Tensor:
    T = max(len(p) for p in paths)
    lp = torch.full((len(paths), T, vocab), -10.0)
    for b, path in enumerate(paths):
        for t, k in enumerate(path):
            lp[b, t, k] = 0.0
    return lp


def test_greedy_collapses_repeats_and_drops_blanks():
    # "a a _ b" -> ab ; "a _ a" -> aa ; "_ _" -> nothing
    lp = one_hot_log_probs([[1, 1, 0, 2], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert greedy_ids(lp, torch.tensor([4, 4, 2])) == [[1, 2], [1, 1], []]


def test_greedy_respects_lengths():
    lp = one_hot_log_probs([[1, 2, 3, 4]])
    assert greedy_ids(lp, torch.tensor([2])) == [[1, 2]]


def test_hypothesis_file_roundtrip(tmp_path):
    hyps = {"u1": "HELLO", "u2": ""}
    write_hypotheses(hyps, tmp_path / "h.jsonl")
    assert read_hypotheses(tmp_path / "h.jsonl") == hyps


def test_best_choices_picks_the_most_likely_allowed_sequence():
    import torch

    from asr.decode import best_choices

    # vocabulary: 0 blank, 1 'A', 2 'B', 3 'C'; frames favour "A B" but the allowed set holds "A C" and "B"
    probs = torch.tensor([[0.1, 0.8, 0.05, 0.05], [0.6, 0.1, 0.2, 0.1], [0.1, 0.05, 0.5, 0.35]])
    lp = probs.log().unsqueeze(0).repeat(2, 1, 1)
    lp[1] = torch.tensor([[0.1, 0.05, 0.8, 0.05]] * 3).log()  # second utterance: clearly "B"
    assert best_choices(lp, torch.tensor([3, 3]), [[1, 3], [2]]) == [0, 1]
    # a choice longer than the frames allow is impossible, never chosen
    assert best_choices(lp[:1], torch.tensor([1]), [[1, 2, 3, 1], [2]]) == [1]


def test_decode_nbest_lists_hypotheses_best_first_with_beam_search_and_choices(digits_model, tmp_path, capsys):
    from asr.cli import main

    out, bundle = digits_model
    manifest = str(out / "data" / "dev.jsonl")
    lines = {}
    for name, opts in {"beam1": ["--beam-size", "8"], "beam": ["--beam-size", "8", "--nbest", "3"],
                       "choices": ["--choices", str(tmp_path / "digits.txt"), "--nbest", "4"],
                       "choices1": ["--choices", str(tmp_path / "digits.txt")]}.items():
        (tmp_path / "digits.txt").write_text("\n".join(DIGITS) + "\n")
        hyp = tmp_path / f"{name}.jsonl"
        assert main(["decode", "--model", str(bundle), "--manifest", manifest, "--out", str(hyp), "--quiet",
                     *opts]) == 0
        lines[name] = [json.loads(x) for x in hyp.read_text().splitlines()]
    for one, many, n in (("beam1", "beam", 3), ("choices1", "choices", 4)):
        assert len(lines[one]) == len(lines[many]) > 0
        for a, b in zip(lines[one], lines[many]):
            assert "nbest" not in a and a["id"] == b["id"] and a["text"] == b["text"] == b["nbest"][0]["text"]
            texts, scores = [h["text"] for h in b["nbest"]], [h["score"] for h in b["nbest"]]
            assert 1 <= len(texts) <= n and len(set(texts)) == len(texts) and scores == sorted(scores, reverse=True)
    assert all(len(b["nbest"]) == 4 and {h["text"] for h in b["nbest"]} <= set(DIGITS) for b in lines["choices"])
    assert main(["decode", "--model", str(bundle), "--manifest", manifest, "--out", str(tmp_path / "g.jsonl"),
                 "--nbest", "2"]) == 2
    assert "needs beam search" in capsys.readouterr().err and not (tmp_path / "g.jsonl").exists()


def test_an_empty_choice_is_the_all_blank_path():
    from asr.decode import best_choices, choice_scores

    # vocabulary: 0 blank, 1 'A', 2 'B'. Mostly blank frames with a weak 'A': the empty choice wins; a clear
    # 'A' frame makes "A" win. The empty choice's score is the sum of the blank log-probabilities.
    quiet = torch.tensor([[0.9, 0.06, 0.04], [0.7, 0.25, 0.05], [0.9, 0.05, 0.05]]).log()
    loud = torch.tensor([[0.9, 0.06, 0.04], [0.1, 0.85, 0.05], [0.9, 0.05, 0.05]]).log()
    lp = torch.stack([quiet, loud])
    lengths = torch.tensor([3, 3])
    scores = choice_scores(lp, lengths, [[], [1], [2]])
    assert torch.allclose(scores[:, 0], lp[:, :, 0].sum(dim=1))
    assert best_choices(lp, lengths, [[], [1], [2]]) == [0, 1]


def test_decode_empty_choice_adds_the_empty_transcript_to_the_choices(digits_model, tmp_path, capsys):
    """`--empty-choice`: the empty transcript is one more choice, scored like the others (the n-best list of all
    eleven choices holds it with a finite score), and otherwise the choice is the one made without it; without
    --choices the flag is refused with one line and no file. (Whether silence decodes to it is the model's business: the
    digits model never heard silence.)"""
    from asr.cli import main

    out, bundle = digits_model
    manifest = str(out / "data" / "dev.jsonl")
    (tmp_path / "digits.txt").write_text("\n".join(DIGITS) + "\n")
    hyp = tmp_path / "h.jsonl"
    assert main(["decode", "--model", str(bundle), "--manifest", manifest, "--out", str(hyp),
                 "--choices", str(tmp_path / "digits.txt"), "--empty-choice", "--nbest", "11", "--quiet"]) == 0
    lines = [json.loads(x) for x in hyp.read_text().splitlines()]
    plain = tmp_path / "p.jsonl"
    assert main(["decode", "--model", str(bundle), "--manifest", manifest, "--out", str(plain),
                 "--choices", str(tmp_path / "digits.txt"), "--quiet"]) == 0
    without = {json.loads(x)["id"]: json.loads(x)["text"] for x in plain.read_text().splitlines()}
    assert len(lines) == len(read_manifest(manifest)) == len(without)
    for line in lines:
        texts = {h["text"]: h["score"] for h in line["nbest"]}
        assert set(texts) == {*DIGITS, ""} and texts[""] > float("-inf")
        best_digit = max(DIGITS, key=texts.get)
        assert without[line["id"]] == best_digit and line["text"] in (best_digit, "")
    assert main(["decode", "--model", str(bundle), "--manifest", manifest, "--out", str(tmp_path / "g.jsonl"),
                 "--empty-choice"]) == 2
    assert "--empty-choice needs --choices" in capsys.readouterr().err and not (tmp_path / "g.jsonl").exists()


def test_decode_averages_the_closed_set_posteriors_of_several_models_and_test_time_warps(
        digits_model, chunked_digits_model, tmp_path, capsys):
    """`asr decode --model A --model B --warps ...` with `--choices`: every utterance's posterior over the
    choices is the mean over models and warps of each one's own posterior (checked against single-model,
    single-warp decodes), n-best scores are log posteriors (they sum to one over all choices), `--warps 1`
    is plain closed-set decoding, and a warp really changes the features. Without --choices, or with a warp
    out of range, one line and no file."""
    import math

    from asr.cli import main

    out, a = digits_model
    b = chunked_digits_model[1]
    manifest = str(out / "data" / "dev.jsonl")
    words = tmp_path / "digits.txt"
    words.write_text("\n".join(DIGITS) + "\n")

    def post(name, *opts):
        hyp = tmp_path / f"{name}.jsonl"
        assert main(["decode", "--manifest", manifest, "--out", str(hyp), "--choices", str(words), "--quiet",
                     *opts]) == 0
        lines = [json.loads(x) for x in hyp.read_text().splitlines()]
        return {x["id"]: {h["text"]: math.exp(h["score"]) for h in x.get("nbest", [])} or x["text"] for x in lines}

    plain = post("plain", "--model", str(a))
    assert post("w1", "--model", str(a), "--warps", "1") == plain
    single = {(m, w): post(f"{k}-{w}", "--model", str(m), "--warps", w, "--nbest", "10")
              for k, m in (("a", a), ("b", b)) for w in ("0.9", "1.1")}
    both = post("both", "--model", str(a), "--model", str(b), "--warps", "0.9,1.1", "--nbest", "10")
    assert set(both) == set(plain) and len(both) == len(read_manifest(manifest)) > 0
    for uid, p in both.items():
        assert set(p) == set(DIGITS) and abs(sum(p.values()) - 1) < 0.01
        for text, v in p.items():
            mean = sum(s[uid][text] for s in single.values()) / 4
            assert abs(v - mean) <= 2e-3 * max(v, mean) + 1e-6  # the logs are rounded to 3 decimals
    assert any(abs(single[(a, "0.9")][u][t] - single[(a, "1.1")][u][t]) > 0.01 for u in plain for t in DIGITS)
    capsys.readouterr()
    for opts, message in ((["--model", str(a), "--model", str(b)], "need --choices"),
                          (["--model", str(a), "--warps", "0.9"], "need --choices"),
                          (["--model", str(a), "--choices", str(words), "--warps", "0.9,3"], "outside 0.5-2"),
                          (["--model", str(a), "--choices", str(words), "--warps", "0.9,x"], "comma-separated")):
        assert main(["decode", "--manifest", manifest, "--out", str(tmp_path / "bad.jsonl"), *opts]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "bad.jsonl").exists()
