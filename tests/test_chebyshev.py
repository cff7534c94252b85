"""The backend's Chebyshev series: the split identity, its depth against OpenFHE's, and real encryption."""

import numpy as np
import pytest
from numpy.polynomial import chebyshev

from resnet_fhe.backends.chebyshev import series_depth, split_series
from resnet_fhe.plan.ops import MAX_DEGREE_AT_DEPTH


@pytest.mark.parametrize(("degree", "m"), [(8, 8), (15, 8), (119, 64), (247, 128)])
def test_split_series_is_exact(degree, m):
    rng = np.random.default_rng(degree)
    coefficients = rng.normal(size=degree + 1)
    q, r = split_series(coefficients, m)
    x = np.linspace(-1, 1, 301)
    t_m = chebyshev.chebval(x, np.eye(m + 1)[m])
    np.testing.assert_allclose(chebyshev.chebval(x, q) * t_m + chebyshev.chebval(x, r),
                               chebyshev.chebval(x, coefficients), atol=1e-9 * np.abs(coefficients).sum())
    with pytest.raises(ValueError, match="degree"):
        split_series(coefficients, 2 * m)


def test_series_depth_is_openfhes_from_degree_27():
    """The degrees the compiler fits (the most each depth holds) take OpenFHE's depth from 27 up; 5 and
    13 take one level more, so the backend leaves those to OpenFHE."""
    for depth, degree in MAX_DEGREE_AT_DEPTH.items():
        assert series_depth(degree) == (depth if degree >= 27 else depth + 1), degree
    assert all(series_depth(d) <= series_depth(d + 1) for d in range(1, 300))


def test_encrypted_series_matches_openfhes_with_the_same_levels():
    pytest.importorskip("openfhe")
    from resnet_fhe.backends.chebyshev import evaluate_series
    from resnet_fhe.backends.openfhe_backend import build_context
    from resnet_fhe.plan.params import load_preset

    params = load_preset("toy-insecure")  # INSECURE test preset
    context = build_context(params)
    keys = context.KeyGen()
    context.EvalMultKeyGen(keys.secretKey)

    def levels_left(ct) -> int:
        return params.multiplicative_depth - ct.GetLevel() - (ct.GetNoiseScaleDeg() - 1)

    rng = np.random.default_rng(1)
    values = rng.uniform(-1, 1, 64)
    for degree in (27, 59, 119):
        coefficients = rng.normal(size=degree + 1) / np.arange(1, degree + 2) ** 1.5
        fresh = context.Encrypt(keys.publicKey, context.MakeCKKSPackedPlaintext(values, 1, 0, None, 64))
        ours = evaluate_series(context, fresh, coefficients, levels_left)
        theirs = context.EvalChebyshevSeries(fresh, [2 * coefficients[0], *coefficients[1:]], -1.0, 1.0)
        spent = levels_left(fresh) - levels_left(ours)
        assert spent == series_depth(degree) == levels_left(fresh) - levels_left(theirs)
        for ct in (ours, theirs):
            plain = context.Decrypt(ct, keys.secretKey)
            plain.SetLength(64)
            got = np.array(plain.GetRealPackedValue())
            assert np.max(np.abs(got - chebyshev.chebval(values, coefficients))) < 1e-5, degree
