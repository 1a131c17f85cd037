import torch

from asr.decode import greedy_ids, read_hypotheses, write_hypotheses


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
