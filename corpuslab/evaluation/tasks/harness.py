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


def lambada_standard_example(doc: Doc) -> Example:
    """lambada_standard: the same text and target as lambada_openai, on the original LAMBADA release
    (`cimec/lambada`, test split) rather than OpenAI's detokenized copy."""
    return lambada_example(doc)


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


# `lm_eval/tasks/mmlu/default/mmlu_<subject>.yaml` tags: subject -> the category group it counts towards
# (`_mmlu_stem.yaml`, ...). The `mmlu` group aggregates all 57 subjects, weighted by size (`_mmlu.yaml`).
MMLU_CATEGORIES: dict[str, tuple[str, ...]] = {
    "stem": tuple(
        """abstract_algebra anatomy astronomy college_biology college_chemistry college_computer_science
        college_mathematics college_physics computer_security conceptual_physics electrical_engineering
        elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science
        high_school_mathematics high_school_physics high_school_statistics machine_learning""".split()
    ),
    "other": tuple(
        """business_ethics clinical_knowledge college_medicine global_facts human_aging management marketing
        medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology""".split()
    ),
    "social_sciences": tuple(
        """econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics
        high_school_microeconomics high_school_psychology human_sexuality professional_psychology
        public_relations security_studies sociology us_foreign_policy""".split()
    ),
    "humanities": tuple(
        """formal_logic high_school_european_history high_school_us_history high_school_world_history
        international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy
        prehistory professional_law world_religions""".split()
    ),
}
MMLU_SUBJECTS: dict[str, str] = {subject: cat for cat, subjects in MMLU_CATEGORIES.items() for subject in subjects}
MMLU_HF_PATH = "cais/mmlu"
MMLU_SPLIT = "test"
MMLU_CHOICES = ("A", "B", "C", "D")


def mmlu_example(doc: Doc, subject: str | None = None) -> Example:
    """mmlu_<subject> (`mmlu/default/_default_template_yaml`), zero-shot: the task's description
    "The following are multiple choice questions (with answers) about {subject with spaces}.\n\n",
    then text "{{question.strip()}}\nA. {{choices[0]}}\nB. ..\nC. ..\nD. {{choices[3]}}\nAnswer:",
    choices ["A", "B", "C", "D"], target answer. The subject is `subject` when given, else the document's
    `subject` field (as in `cais/mmlu`)."""
    subject = subject or doc["subject"]
    if subject not in MMLU_SUBJECTS:
        raise ValueError(f"'{subject}' is not one of the 57 MMLU subjects")
    choices = doc["choices"]
    if len(choices) != 4:
        raise ValueError(f"expected 4 choices, got {len(choices)}")
    description = f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(MMLU_CHOICES, choices, strict=True))
    return multiple_choice(f"{description}{doc['question'].strip()}{options}\nAnswer:", MMLU_CHOICES, int(doc["answer"]), subject)


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
            "lambada_standard",
            "loglikelihood",
            ("acc", "perplexity"),
            lambada_standard_example,
            HFSource("cimec/lambada", None, "test"),
            description="LAMBADA as first released: last word of a passage, predictable only from the wider context",
        ),
        TaskSpec(
            "mmlu",
            "multiple_choice",
            ("acc",),
            mmlu_example,
            None,
            grouped=True,
            description="57 subjects of multiple-choice exam questions, answered by letter; mean weighted by size",
            weighting="size",
            categories=tuple(MMLU_SUBJECTS.items()),
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


def mmlu_subject_spec(name: str) -> TaskSpec | None:
    """`mmlu_<subject>`: one MMLU subject on its own, or None if `name` is not one."""
    subject = name.removeprefix("mmlu_")
    if not name.startswith("mmlu_") or subject not in MMLU_SUBJECTS:
        return None
    return TaskSpec(
        name,
        "multiple_choice",
        ("acc",),
        lambda doc: mmlu_example(doc, subject),
        HFSource(MMLU_HF_PATH, subject, MMLU_SPLIT),
        description=f"MMLU subject {subject.replace('_', ' ')}",
    )
