"""The lm-evaluation-harness tasks, document to requests, as the harness (v0.4.13) builds them.

Each function mirrors the task's YAML (`lm_eval/tasks/<task>/*.yaml`) and helpers, zero-shot:
the context is `doc_to_text`, each continuation is `target_delimiter` (" ") + a choice (multiple
choice) or `doc_to_target` (loglikelihood). The YAML line each one follows is quoted in its docstring.
"""

from __future__ import annotations

import re

from corpuslab.evaluation.tasks.base import TARGET_DELIMITER, Doc, Example, HFSource, Request, TaskSpec, multiple_choice


def lambada_example(doc: Doc) -> Example:
    """lambada_openai: text "{{text.split(' ')[:-1]|join(' ')}}", target "{{' '+text.split(' ')[-1]}}"."""
    words = doc["text"].split(" ")
    return Example((Request(" ".join(words[:-1]), " " + words[-1]),))


def piqa_example(doc: Doc) -> Example:
    """piqa: text "Question: {{goal}}\\nAnswer:", choices [sol1, sol2], target label."""
    return multiple_choice(f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], int(doc["label"]))


def hellaswag_clean(text: str) -> str:
    """`lm_eval/tasks/hellaswag/utils.py: preprocess`: drops WikiHow's bracketed artifacts."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag_example(doc: Doc) -> Example:
    """hellaswag: `process_docs` builds query = activity_label + ": " + ctx_a + " " + ctx_b.capitalize()."""
    context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    query = hellaswag_clean(doc["activity_label"] + ": " + context)
    return multiple_choice(query, [hellaswag_clean(ending) for ending in doc["endings"]], int(doc["label"]))


def arc_example(doc: Doc) -> Example:
    """arc_easy / arc_challenge: text "Question: {{question}}\\nAnswer:", choices choices.text,
    target choices.label.index(answerKey)."""
    choices = doc["choices"]
    gold = list(choices["label"]).index(doc["answerKey"])
    return multiple_choice(f"Question: {doc['question']}\nAnswer:", list(choices["text"]), gold)


def winogrande_example(doc: Doc) -> Example:
    """winogrande, "partial evaluation" (Trinh & Le 2018): each option fills the blank in the context,
    and the model scores the shared rest of the sentence; the option with the likelier rest wins.

    `preprocess_winogrande.py`: contexts sentence[:blank] + option, target sentence[blank+1:].strip().
    """
    sentence = doc["sentence"]
    blank = sentence.index("_")
    contexts = [sentence[:blank] + doc["option1"], sentence[:blank] + doc["option2"]]
    rest = TARGET_DELIMITER + sentence[blank + 1 :].strip()
    gold = {"1": 0, "2": 1}[str(doc["answer"])]
    # The harness's `doc_to_choice` returns the filled contexts; they are what acc_norm would divide by.
    return Example(tuple(Request(context, rest) for context in contexts), gold, tuple(contexts))


def blimp_example(doc: Doc, paradigm: str | None = None) -> Example:
    """blimp_*: empty context, choices [sentence_good, sentence_bad], target 0. The paradigm is
    `paradigm` when given, else the document's `UID` field (the Hugging Face config name)."""
    group = paradigm or doc["UID"]
    return multiple_choice("", [doc["sentence_good"], doc["sentence_bad"]], 0, group)


# `lm_eval/tasks/blimp/_blimp.yaml`: the 67 paradigms of the `blimp` group.
BLIMP_PARADIGMS: tuple[str, ...] = tuple(
    """adjunct_island anaphor_gender_agreement anaphor_number_agreement animate_subject_passive
    animate_subject_trans causative complex_NP_island coordinate_structure_constraint_complex_left_branch
    coordinate_structure_constraint_object_extraction determiner_noun_agreement_1 determiner_noun_agreement_2
    determiner_noun_agreement_irregular_1 determiner_noun_agreement_irregular_2
    determiner_noun_agreement_with_adj_2 determiner_noun_agreement_with_adj_irregular_1
    determiner_noun_agreement_with_adj_irregular_2 determiner_noun_agreement_with_adjective_1
    distractor_agreement_relational_noun distractor_agreement_relative_clause drop_argument ellipsis_n_bar_1
    ellipsis_n_bar_2 existential_there_object_raising existential_there_quantifiers_1
    existential_there_quantifiers_2 existential_there_subject_raising expletive_it_object_raising inchoative
    intransitive irregular_past_participle_adjectives irregular_past_participle_verbs
    irregular_plural_subject_verb_agreement_1 irregular_plural_subject_verb_agreement_2
    left_branch_island_echo_question left_branch_island_simple_question matrix_question_npi_licensor_present
    npi_present_1 npi_present_2 only_npi_licensor_present only_npi_scope passive_1 passive_2
    principle_A_c_command principle_A_case_1 principle_A_case_2 principle_A_domain_1 principle_A_domain_2
    principle_A_domain_3 principle_A_reconstruction regular_plural_subject_verb_agreement_1
    regular_plural_subject_verb_agreement_2 sentential_negation_npi_licensor_present
    sentential_negation_npi_scope sentential_subject_island superlative_quantifiers_1
    superlative_quantifiers_2 tough_vs_raising_1 tough_vs_raising_2 transitive wh_island
    wh_questions_object_gap wh_questions_subject_gap wh_questions_subject_gap_long_distance wh_vs_that_no_gap
    wh_vs_that_no_gap_long_distance wh_vs_that_with_gap wh_vs_that_with_gap_long_distance""".split()
)
BLIMP_HF_PATH = "nyu-mll/blimp"
BLIMP_SPLIT = "train"  # BLiMP has one split; the harness evaluates on it (`validation_split: train`)

_MC = ("acc", "acc_norm")

HARNESS_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "lambada_openai",
            "loglikelihood",
            ("acc", "perplexity"),
            lambada_example,
            HFSource("EleutherAI/lambada_openai", "default", "test"),
            description="last word of a passage, predictable only from the wider context",
        ),
        TaskSpec(
            "piqa",
            "multiple_choice",
            _MC,
            piqa_example,
            HFSource("baber/piqa", None, "validation"),
            description="physical commonsense: which of two solutions reaches the goal",
        ),
        TaskSpec(
            "hellaswag",
            "multiple_choice",
            _MC,
            hellaswag_example,
            HFSource("Rowan/hellaswag", None, "validation"),
            description="commonsense completion of an activity description, four endings",
        ),
        TaskSpec(
            "arc_easy",
            "multiple_choice",
            _MC,
            arc_example,
            HFSource("allenai/ai2_arc", "ARC-Easy", "test"),
            description="grade-school science questions, easy set",
        ),
        TaskSpec(
            "arc_challenge",
            "multiple_choice",
            _MC,
            arc_example,
            HFSource("allenai/ai2_arc", "ARC-Challenge", "test"),
            description="grade-school science questions that retrieval and co-occurrence fail on",
        ),
        TaskSpec(
            "winogrande",
            "multiple_choice",
            ("acc",),
            winogrande_example,
            HFSource("allenai/winogrande", "winogrande_xl", "validation"),
            description="pronoun resolution, scored by partial evaluation",
        ),
        TaskSpec(
            "blimp",
            "multiple_choice",
            ("acc",),
            blimp_example,
            None,
            grouped=True,
            description="grammatical vs ungrammatical minimal pairs, 67 paradigms, unweighted mean",
        ),
    )
}


def blimp_paradigm_spec(name: str) -> TaskSpec | None:
    """`blimp_<paradigm>`: one BLiMP paradigm on its own, or None if `name` is not one."""
    paradigm = name.removeprefix("blimp_")
    if not name.startswith("blimp_") or paradigm not in BLIMP_PARADIGMS:
        return None
    return TaskSpec(
        name,
        "multiple_choice",
        ("acc",),
        lambda doc: blimp_example(doc, paradigm),
        HFSource(BLIMP_HF_PATH, paradigm, BLIMP_SPLIT),
        description=f"BLiMP paradigm {paradigm}",
    )
