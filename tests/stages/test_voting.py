"""Majority voting, pass@k and reranking selections on hand-made sample sets (no model)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reftlab.data import Example
from reftlab.rewards.score import Score
from reftlab.rewards.scorer import Scorer
from reftlab.stages.evaluate import majority_vote, rerank_fields, sample_fields, summarise


def natural_scorer() -> Scorer:
    return Scorer("natural", 0.1, ["the answer is", "####"], "last_number", 2.0)


def test_most_frequent_answer_wins() -> None:
    assert majority_vote(["3", "7", "7", "3", "7"]) == "7"  # 7 has 3 votes, 3 has 2


def test_tie_goes_to_the_answer_seen_first() -> None:
    assert majority_vote(["5", "6", "6", "5"]) == "5"  # 2 votes each; 5 came first
    assert majority_vote(["6", "5", "5", "6"]) == "6"


def test_none_answers_do_not_vote() -> None:
    # Three unreadable samples must not outvote one readable answer.
    assert majority_vote([None, None, "4", None]) == "4"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_equal_numbers_vote_together_through_the_scorers_key() -> None:
    key = natural_scorer().answer_key
    answers = ["18.0", "17", "18", "17", "18.00"]
    # Without the key: "17" has 2 votes, every spelling of 18 has 1.
    assert majority_vote(answers) == "17"
    # With it: 18 has 3 votes (18.0, 18, 18.00); the class's first spelling is returned.
    assert majority_vote(answers, key=key) == "18.0"
    assert majority_vote(["1,000", "1000", "999"], key=key) == "1,000"


def test_choice_letters_vote_case_blind() -> None:
    key = natural_scorer().answer_key
    assert majority_vote(["b", "C", "c", "b", "c"], key=key) == "C"  # c: 3 votes, b: 2


@given(st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "3"])), max_size=12))
def test_voted_answer_has_the_most_votes(answers: list[str | None]) -> None:
    voted = majority_vote(answers)
    readable = [a for a in answers if a is not None]
    if not readable:
        assert voted is None
        return
    counts = {a: readable.count(a) for a in readable}
    assert counts[voted] == max(counts.values())
    # ...and among the tied answers, it is the first one in the list.
    tied = [a for a in readable if counts[a] == counts[voted]]
    assert voted == tied[0]


def score(extracted: str | None, correct: bool) -> Score:
    return Score(reward=1.0 if correct else 0.0, extracted=extracted, correct=correct)


def test_sample_fields_keep_samples_answers_and_vote() -> None:
    example = Example(id="q", question="?", answer="18")
    texts = ["The answer is 18.0.", "The answer is 17.", "no idea", "The answer is 18."]
    scores = [score("18.0", True), score("17", False), score(None, False), score("18", True)]
    fields = sample_fields(example, texts, scores, natural_scorer())
    assert fields == {
        "samples": texts,
        "sample_answers": ["18.0", "17", None, "18"],
        "sample_correct": [True, False, False, True],
        "voted": "18.0",
        "voted_correct": True,
        "pass": True,
    }


def test_rerank_picks_the_top_scored_sample() -> None:
    assert rerank_fields([0.1, 0.9, 0.2], [True, False, True]) == {
        "rm_scores": [0.1, 0.9, 0.2],
        "reranked": 1,
        "reranked_correct": False,
    }
    # Ties go to the earliest sample.
    assert rerank_fields([0.5, 0.5], [False, True])["reranked"] == 0


def test_summarise_golden() -> None:
    # Three questions, k = 3: greedy right on 1 and 3; the vote right on 1; some sample right on
    # 1 and 2; the reward model's pick right on 2.
    records = [
        {
            "correct": True,
            "reward": 1.0,
            "extracted": "18",
            "voted_correct": True,
            "pass": True,
            "reranked_correct": False,
        },
        {
            "correct": False,
            "reward": 0.1,
            "extracted": "4",
            "voted_correct": False,
            "pass": True,
            "reranked_correct": True,
        },
        {
            "correct": True,
            "reward": 1.0,
            "extracted": "7",
            "voted_correct": False,
            "pass": False,
            "reranked_correct": False,
        },
    ]
    metrics = summarise(records, samples=3)
    assert metrics == {
        "eval/accuracy": 2 / 3,
        "eval/mean_reward": (1.0 + 0.1 + 1.0) / 3,
        "eval/extracted_rate": 3 / 3,
        "eval/n": 3,
        "eval/maj@3": 1 / 3,
        "eval/pass@3": 2 / 3,
        "eval/rerank@3": 1 / 3,
    }
    greedy_only = summarise([{k: records[0][k] for k in ("correct", "reward", "extracted")}], 1)
    assert set(greedy_only) == {
        "eval/accuracy",
        "eval/mean_reward",
        "eval/extracted_rate",
        "eval/n",
    }


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["1", "2", None]), min_size=2, max_size=5),
            st.lists(st.floats(-5, 5), min_size=5, max_size=5),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_pass_at_k_bounds_vote_and_rerank(questions) -> None:
    """Whatever the samples, the vote and the reward model's pick are right only if some sample
    is: pass@k >= maj@k and pass@k >= rerank@k."""
    scorer = natural_scorer()
    example = Example(id="q", question="?", answer="1")
    records = []
    for answers, rm_scores in questions:
        scores = [score(a, a == "1") for a in answers]
        record = {"correct": False, "reward": 0.0, "extracted": None}
        record.update(sample_fields(example, [""] * len(answers), scores, scorer))
        record.update(rerank_fields(rm_scores[: len(answers)], record["sample_correct"]))
        records.append(record)
    k = 2  # the metric names only; the bounds hold for any k
    metrics = summarise(records, samples=k)
    assert metrics[f"eval/pass@{k}"] >= metrics[f"eval/maj@{k}"]
    assert metrics[f"eval/pass@{k}"] >= metrics[f"eval/rerank@{k}"]
