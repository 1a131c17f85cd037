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
