"""The chunk-length policy of zoo.kernels.rnn_loops, as properties over many shapes."""

import pytest

from zoo.kernels import rnn_loops

hypothesis = pytest.importorskip("hypothesis")
given, settings, st = hypothesis.given, hypothesis.settings, hypothesis.strategies


@settings(max_examples=200, deadline=None)
@given(t=st.integers(1, 2000), b=st.integers(1, 256), width=st.integers(1, 4096),
       itemsize=st.sampled_from([2, 4, 8]))
def test_chunk_length_covers_the_sequence_with_least_padding(t, b, width, itemsize):
    # What the policy promises, read off its definition: one chunk when the sequence fits
    # the cap; else no more chunks than the cap forces, each no longer than the cap, and
    # fewer padded steps than chunks.
    cap = max(rnn_loops.CHUNK, rnn_loops.CHUNK_BYTES // (b * width * itemsize))
    c = rnn_loops.chunk_length(t, b, width, itemsize)
    chunks = -(-t // c)
    if t <= cap:
        assert c == t
    else:
        assert c <= cap and chunks == -(-t // cap) or (t % c == 0 and c > cap // 2)
        assert chunks * c - t < chunks
