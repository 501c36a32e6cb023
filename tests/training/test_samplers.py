"""Batch samplers: the default is the old WindowSampler exactly; all are pure functions of (seed, step)."""

import numpy as np
import pytest

from corpuslab.errors import ConfigError, StageError
from corpuslab.tokens.stream import TokenStream, write_token_stream
from corpuslab.training.model import build_model
from corpuslab.training.procedures import Standard, procedures
from corpuslab.training.samplers import SamplingData, samplers
from tests.training.toy import MODEL, VOCAB, config, run


class OldWindowSampler:
    """The WindowSampler of the trainer before samplers were plug-ins, frozen here verbatim: the
    `shuffled` sampler must reproduce its batches exactly, or default runs would change."""

    def __init__(self, n_windows: int, batch_size: int, seed: int):
        self.n_windows, self.batch_size, self.seed = n_windows, batch_size, seed
        self._permutations: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutations:
            if len(self._permutations) >= 2:
                self._permutations.pop(min(self._permutations))
            rng = np.random.default_rng([self.seed, epoch])
            self._permutations[epoch] = rng.permutation(self.n_windows)
        return self._permutations[epoch]

    def batch_indices(self, update: int) -> np.ndarray:
        samples = np.arange(update * self.batch_size, (update + 1) * self.batch_size, dtype=np.int64)
        epochs, positions = np.divmod(samples, self.n_windows)
        indices = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            indices[mask] = self._permutation(int(epoch))[positions[mask]]
        return indices


# Document lengths (tokens before eos): two too short for a 16 + 1 token window, one exactly long enough.
DOC_LENGTHS = [40, 5, 17, 16, 100, 60]


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> TokenStream:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("varied")
    write_token_stream(root / "train", [rng.integers(1, VOCAB, n) for n in DOC_LENGTHS], vocab_size=VOCAB, eos_id=0)
    return TokenStream.open(root / "train")


def _sampler(name: str, stream: TokenStream, seed: int = 3, batch_size: int = 8, chunk_len: int = 16,
             windows: np.ndarray | None = None):
    sampler = samplers.build(name, "sampler")
    windows = stream.windows(chunk_len) if windows is None else windows
    sampler.setup(SamplingData(stream, windows, chunk_len, batch_size, seed))
    return sampler


@pytest.mark.parametrize("n_windows, batch_size, seed", [(10, 4, 7), (13, 5, 0), (3, 8, 2), (64, 8, 1)])
def test_shuffled_gives_exactly_the_old_window_sampler_batches(varied, n_windows, batch_size, seed):
    windows = np.arange(n_windows, dtype=np.int64) * 3 + 1  # any starts: the sampler picks among them
    sampler = _sampler("shuffled", varied, seed, batch_size, windows=windows)
    old = OldWindowSampler(n_windows, batch_size, seed)
    for step in range(40):  # several epochs, batches straddling epoch boundaries
        np.testing.assert_array_equal(sampler.batch_starts(step), windows[old.batch_indices(step)])


def test_sequential_walks_the_windows_in_order_epoch_after_epoch(varied):
    windows = varied.windows(16)
    sampler = _sampler("sequential", varied, batch_size=4)
    seen = np.concatenate([sampler.batch_starts(step) for step in range(2 * len(windows))])
    np.testing.assert_array_equal(seen, np.tile(windows, 8))
    fresh = _sampler("sequential", varied, seed=99, batch_size=4)  # the seed does not matter
    np.testing.assert_array_equal(fresh.batch_starts(5), sampler.batch_starts(5))


def test_random_window_draws_windows_inside_long_enough_documents(varied):
    sampler = _sampler("random_window", varied, batch_size=64)
    assert sampler.stats() == {"documents": 6, "documents_sampled": 4, "documents_skipped_shorter_than_window": 2,
                               "window_tokens": 17}
    starts = np.concatenate([sampler.batch_starts(step) for step in range(20)])
    docs = np.searchsorted(varied.offsets, starts, side="right") - 1
    doc_ends = varied.offsets[docs + 1] - 1  # where the document's eos sits
    assert np.all(starts + 17 <= doc_ends)  # the whole window lies in one document, eos excluded
    assert set(docs) == {0, 2, 4, 5}  # every long enough document, no short one
    assert np.all(starts[docs == 2] == varied.offsets[2])  # exactly one window fits a 17-token document
    counts = np.bincount(docs, minlength=6)[[0, 2, 4, 5]]
    assert counts.min() > 0.15 * len(starts)  # documents drawn uniformly, not by length


def test_random_window_is_a_pure_function_of_seed_and_step(varied):
    first, second = _sampler("random_window", varied), _sampler("random_window", varied)
    in_order = [first.batch_starts(step) for step in range(6)]
    np.testing.assert_array_equal(second.batch_starts(5), in_order[5])  # no history: resumable as is
    np.testing.assert_array_equal(second.batch_starts(0), in_order[0])
    other_seed = _sampler("random_window", varied, seed=4)
    assert not np.array_equal(other_seed.batch_starts(0), in_order[0])


def test_random_window_needs_one_long_enough_document(varied):
    with pytest.raises(StageError, match="no document of at least 102 tokens"):
        _sampler("random_window", varied, chunk_len=101)


def test_random_window_refuses_to_undo_chunk_level_curation(varied):
    curated = np.delete(varied.windows(16), 2)
    with pytest.raises(StageError, match="curated subset"):
        _sampler("random_window", varied, windows=curated)
    _sampler("random_window", varied, windows=varied.windows(16, 5))  # any stride of the whole stream is fine


@pytest.mark.parametrize("sampler", ["shuffled", "sequential", "random_window"])
def test_out_of_vocabulary_ids_stop_training_naming_the_window(streams, tmp_path, sampler):
    small = build_model(MODEL, VOCAB - 3, seed=0, eos_id=0)  # the stream's top ids are outside it
    procedure = procedures.build({"name": "standard", "sampler": sampler}, "procedure")
    with pytest.raises(StageError, match=rf"step 1: the window at token offset \d+ holds token id 2[6-8], "
                                         rf"outside the model's vocabulary of {VOCAB - 3}"):
        run(streams, tmp_path, config(), model=small, procedure=procedure)


def test_unknown_sampler_names_the_key_and_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"one of the known samplers \['random_window', 'sequential', 'shuffled'\]") as error:
        procedures.build({"name": "standard", "sampler": "shuffle"}, "runs[1].procedure")
    assert error.value.key == "runs[1].procedure.sampler"
    with pytest.raises(ConfigError) as error:
        procedures.build({"name": "standard", "sampler": {"name": "sequential", "stride": 2}}, "runs[1].procedure")
    assert error.value.key == "runs[1].procedure.sampler.stride"


def test_the_default_procedure_samples_shuffled():
    assert Standard().sampler.name == "shuffled"
