"""The eight 2D densities of the FFJORD toy suite, each with its *true* log-density.

The samplers follow FFJORD's `lib/toy_data.py` (which calls scikit-learn's `make_moons`,
`make_circles` and `make_swiss_roll`), written in JAX; where FFJORD places points on evenly
spaced angles (rings, circles, moons), the angle is drawn uniformly instead: the same
distribution in the limit, and the one whose density is written below. Because the truth is
known, the true entropy H(p) is the floor of every model's expected test NLL:
E_p[-log q] = H(p) + KL(p || q) >= H(p). Results are reported as gap = NLL - H(p).

`log_prob` is in closed form where there is one (8gaussians, checkerboard, and rings and
circles through the Bessel function I0), by Gauss-Legendre quadrature over the curve
parameter for a curve plus noise (moons, swissroll, 2spirals), and by numerical inversion
of the generating map for pinwheel. Every one is tested to integrate to 1 and to agree
with its sampler.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, log_ndtr, logsumexp

Array = jax.Array
LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class Toy2D:
    """A 2D density: `sample(key, n)`, exact `log_prob(x)` for x of shape (n, 2), `entropy()`."""

    name: str
    sample_fn: Callable[[Array, int], Array]
    log_prob_one: Callable[[Array], Array]  # one point (2,) -> scalar
    recipe: str
    box: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0)  # plotting / grid box
    chunk: int = 4096

    def sample(self, key: Array, n: int) -> Array:
        return self.sample_fn(key, n)

    def log_prob(self, x: Array) -> Array:
        x = jnp.asarray(x, jnp.float32)
        if x.ndim != 2 or x.shape[-1] != 2:
            raise ValueError(f"{self.name}.log_prob takes points of shape (n, 2), got {x.shape}")
        return _batched_log_prob(self.log_prob_one, self.chunk, x)

    def entropy(self, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
        """Monte Carlo H(p) = -E_p[log p] over n samples: (estimate, standard error)."""
        return _entropy(self, n, seed)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _batched_log_prob(log_prob_one, chunk, x):
    return jax.lax.map(log_prob_one, x, batch_size=min(chunk, x.shape[0]))


@functools.cache
def _entropy(toy: Toy2D, n: int, seed: int) -> tuple[float, float]:
    lp = np.asarray(toy.log_prob(toy.sample(jax.random.key(seed), n)), np.float64)
    return float(-lp.mean()), float(lp.std(ddof=1) / math.sqrt(n))


# ----------------------------------------------------------------------------- helpers


def _normal_logpdf_2d(x: Array, means: Array, sigma: float) -> Array:
    """log N(x; m, sigma^2 I) for one point x (2,) and each row m of means (k, 2)."""
    return -0.5 * jnp.sum((x[None] - means) ** 2, axis=-1) / sigma**2 - LOG_2PI - 2 * math.log(sigma)


def _ring_log_density(x: Array, radius: float, sigma: float) -> Array:
    """log of: angle uniform on a circle of `radius`, plus N(0, sigma^2 I) noise.

    (1/2pi) int N(x; R u(theta), s^2 I) dtheta = exp(-(r - R)^2 / 2s^2) i0e(rR/s^2) / (2 pi s^2),
    with i0e the exponentially scaled Bessel function (stable for large arguments).
    """
    r = jnp.sqrt(jnp.sum(x**2) + 1e-30)
    return (
        -0.5 * (r - radius) ** 2 / sigma**2
        + jnp.log(i0e(r * radius / sigma**2))
        - LOG_2PI
        - 2 * math.log(sigma)
    )


def _gauss_legendre(lo: float, hi: float, panels: int, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss-Legendre quadrature on [lo, hi]."""
    t, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, panels + 1)
    half = np.diff(edges)[:, None] / 2
    nodes = (edges[:-1, None] + half * (t[None, :] + 1)).ravel()
    weights = (half * w[None, :]).ravel()
    return nodes.astype(np.float32), weights.astype(np.float64)


def _curve_log_density(log_kernel, curve, t_lo, t_hi, panels, log_weight_fn=None):
    """log int p(t) k(x - c(t)) dt by quadrature; p(t) uniform on [t_lo, t_hi] unless given.

    Returns a function of one point x. `log_kernel(x, center)` is the noise log-density.
    """
    nodes, weights = _gauss_legendre(t_lo, t_hi, panels)
    if log_weight_fn is None:
        log_w = np.log(weights) - np.log(t_hi - t_lo)
    else:
        log_w = np.log(weights) + log_weight_fn(nodes.astype(np.float64))
    centers = np.stack(curve(nodes.astype(np.float64)), axis=-1).astype(np.float32)  # (nodes, 2)
    log_w = log_w.astype(np.float32)

    def log_prob_one(x):
        return logsumexp(log_kernel(x, jnp.asarray(centers)) + jnp.asarray(log_w))

    return log_prob_one


# ----------------------------------------------------------------------------- 8gaussians

_8G_CENTERS = (
    np.array(
        [(1, 0), (-1, 0), (0, 1), (0, -1)]
        + [(a / np.sqrt(2), b / np.sqrt(2)) for a in (1, -1) for b in (1, -1)],
        np.float64,
    )
    * 4.0
    / 1.414
).astype(np.float32)
_8G_SIGMA = 0.5 / 1.414


def _8g_sample(key, n):
    kc, kn = jax.random.split(key)
    idx = jax.random.randint(kc, (n,), 0, 8)
    return jnp.asarray(_8G_CENTERS)[idx] + _8G_SIGMA * jax.random.normal(kn, (n, 2))


def _8g_log_prob(x):
    return logsumexp(_normal_logpdf_2d(x, jnp.asarray(_8G_CENTERS), _8G_SIGMA)) - math.log(8)


# ----------------------------------------------------------------------------- checkerboard


def _cb_sample(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = jax.random.uniform(k1, (n,)) * 4 - 2
    x2_ = jax.random.uniform(k2, (n,)) - jax.random.randint(k3, (n,), 0, 2) * 2
    x2 = x2_ + jnp.floor(x1) % 2
    return jnp.stack([x1, x2], axis=1) * 2


def _cb_log_prob(x):
    u = x / 2
    inside = jnp.all((u >= -2) & (u < 2))
    same_parity = jnp.floor(u[0]) % 2 == jnp.floor(u[1]) % 2
    return jnp.where(inside & same_parity, -math.log(32.0), -jnp.inf)


# ----------------------------------------------------------------------------- rings, circles

_RINGS_RADII = (3.0, 2.25, 1.5, 0.75)
_RINGS_SIGMA = 0.08
_CIRCLES_RADII = (3.0, 1.5)
_CIRCLES_SIGMA = 0.24  # make_circles(noise=0.08), then scaled by 3


def _rings_sampler(radii, sigma):
    def sample(key, n):
        kc, ka, kn = jax.random.split(key, 3)
        r = jnp.asarray(radii)[jax.random.randint(kc, (n,), 0, len(radii))]
        theta = jax.random.uniform(ka, (n,), maxval=2 * math.pi)
        return r[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], 1) + sigma * jax.random.normal(
            kn, (n, 2)
        )

    return sample


def _rings_log_prob(radii, sigma):
    def log_prob_one(x):
        parts = jnp.stack([_ring_log_density(x, r, sigma) for r in radii])
        return logsumexp(parts) - math.log(len(radii))

    return log_prob_one


# ----------------------------------------------------------------------------- moons

_MOONS_SIGMA = 0.2  # make_moons(noise=0.1), then scaled by 2


def _moon_curves(t):
    """Upper and lower moon of make_moons, scaled by 2 and shifted by (-1, -0.2)."""
    upper = (2 * np.cos(t) - 1, 2 * np.sin(t) - 0.2)
    lower = (1 - 2 * np.cos(t), 0.8 - 2 * np.sin(t))
    return upper, lower


def _moons_sample(key, n):
    km, kt, kn = jax.random.split(key, 3)
    t = jax.random.uniform(kt, (n,), maxval=math.pi)
    which = jax.random.bernoulli(km, 0.5, (n,))
    upper = jnp.stack([2 * jnp.cos(t) - 1, 2 * jnp.sin(t) - 0.2], 1)
    lower = jnp.stack([1 - 2 * jnp.cos(t), 0.8 - 2 * jnp.sin(t)], 1)
    return jnp.where(which[:, None], upper, lower) + _MOONS_SIGMA * jax.random.normal(kn, (n, 2))


def _gauss_kernel(sigma):
    return lambda x, c: _normal_logpdf_2d(x, c, sigma)


_moon_parts = [
    _curve_log_density(_gauss_kernel(_MOONS_SIGMA), lambda t, i=i: _moon_curves(t)[i], 0.0, math.pi, 16)
    for i in range(2)
]


def _moons_log_prob(x):
    return jnp.logaddexp(_moon_parts[0](x), _moon_parts[1](x)) - math.log(2)


# ----------------------------------------------------------------------------- swissroll

_SWISS_SIGMA = 0.2  # make_swiss_roll(noise=1.0), then divided by 5
_SWISS_T = (1.5 * math.pi, 4.5 * math.pi)


def _swiss_sample(key, n):
    kt, kn = jax.random.split(key)
    t = jax.random.uniform(kt, (n,), minval=_SWISS_T[0], maxval=_SWISS_T[1])
    return jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], 1) / 5 + _SWISS_SIGMA * jax.random.normal(kn, (n, 2))


_swiss_log_prob = _curve_log_density(
    _gauss_kernel(_SWISS_SIGMA), lambda t: (t * np.cos(t) / 5, t * np.sin(t) / 5), *_SWISS_T, 64
)

# ----------------------------------------------------------------------------- 2spirals

_SPIRAL_N_MAX = 3 * math.pi  # 540 degrees
_SPIRAL_BOX = 0.5 / 3  # uniform offset U[0, 0.5] per coordinate, then divided by 3
_SPIRAL_SIGMA = 0.1


def _spirals_sample(key, n):
    kn_, ko, ks, ke = jax.random.split(key, 4)
    t = jnp.sqrt(jax.random.uniform(kn_, (n,))) * _SPIRAL_N_MAX
    centre = jnp.stack([-jnp.cos(t) * t, jnp.sin(t) * t], 1) / 3
    point = centre + jax.random.uniform(ko, (n, 2)) * _SPIRAL_BOX
    sign = jnp.where(jax.random.bernoulli(ks, 0.5, (n,)), 1.0, -1.0)[:, None]
    return sign * point + _SPIRAL_SIGMA * jax.random.normal(ke, (n, 2))


def _log_box_gauss(u):
    """log density of U[0, w] + N(0, s^2) at u (per coordinate), stable in both tails."""
    a, b = u / _SPIRAL_SIGMA, (u - _SPIRAL_BOX) / _SPIRAL_SIGMA  # Phi(a) - Phi(b), a > b
    flip = b > 0  # right tail: use Phi(-b) - Phi(-a)
    hi, lo = jnp.where(flip, -b, a), jnp.where(flip, -a, b)
    lhi, llo = log_ndtr(hi), log_ndtr(lo)
    return lhi + jnp.log1p(-jnp.exp(llo - lhi)) - math.log(_SPIRAL_BOX)


def _box_gauss_kernel(x, centers):
    return jnp.sum(_log_box_gauss(x[None] - centers), axis=-1)


_spiral_q = _curve_log_density(
    _box_gauss_kernel,
    lambda t: (-np.cos(t) * t / 3, np.sin(t) * t / 3),
    0.0,
    _SPIRAL_N_MAX,
    64,
    log_weight_fn=lambda t: np.log(2 * np.maximum(t, 1e-30) / _SPIRAL_N_MAX**2),  # t = 3pi sqrt(U)
)


def _spirals_log_prob(x):
    return jnp.logaddexp(_spiral_q(x), _spiral_q(-x)) - math.log(2)


# ----------------------------------------------------------------------------- pinwheel

_PW_CLASSES = 5
_PW_RADIAL_SD, _PW_TANGENTIAL_SD, _PW_RATE = 0.3, 0.1, 0.25
_PW_GRID = 256  # angular grid for bracketing the roots
_PW_MAX_ROOTS = 6  # per class; more than 3 only occur far outside the plotting box
_PW_BISECT = 30  # bisection steps: the bracket shrinks to 2 pi / grid / 2^30


def _pinwheel_sample(key, n):
    kc, kf = jax.random.split(key)
    labels = jax.random.randint(kc, (n,), 0, _PW_CLASSES)
    feats = jax.random.normal(kf, (n, 2)) * jnp.array([[_PW_RADIAL_SD, _PW_TANGENTIAL_SD]]) + jnp.array(
        [[1.0, 0.0]]
    )
    angle = 2 * math.pi * labels / _PW_CLASSES + _PW_RATE * jnp.exp(feats[:, 0])
    c, s = jnp.cos(angle), jnp.sin(angle)
    return 2 * jnp.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], 1)


def _pinwheel_log_prob(x):
    """Invert x = 2 Rot(-a(r)) (r, t), a = 2 pi k / 5 + 0.25 exp(r), (r, t) ~ N((1, 0), diag(.09, .01)).

    In polar coordinates (rho, phi) of the feature vector f = (r, t), the map keeps rho = |x| / 2
    and sends phi to psi = phi - a(rho cos phi). So p(x) = sum_k 1/5 sum_{phi : g(phi) = psi_k}
    p_f(f(phi)) / (4 |g'(phi)|) with g(phi) = phi - 0.25 exp(rho cos phi) and psi_k = angle(x) + 2 pi k / 5
    (mod 2 pi). The roots are bracketed on an angular grid and refined by bisection.
    """
    rho = jnp.sqrt(jnp.sum(x**2) + 1e-30) / 2
    psi = jnp.arctan2(x[1], x[0])
    g = lambda phi: phi - _PW_RATE * jnp.exp(rho * jnp.cos(phi))
    grid = jnp.linspace(-math.pi, math.pi, _PW_GRID + 1)
    g_grid = g(grid)  # continuous; g(pi) = g(-pi) + 2 pi
    lo, hi = jnp.minimum(g_grid[:-1], g_grid[1:]), jnp.maximum(g_grid[:-1], g_grid[1:])

    def per_class(k):
        target0 = psi + 2 * math.pi * k / _PW_CLASSES
        m = jnp.ceil((lo - target0) / (2 * math.pi))
        target = target0 + 2 * math.pi * m  # the smallest target level >= lo in each interval
        has_root = (target >= lo) & (target < hi)
        (idx,) = jnp.nonzero(has_root, size=_PW_MAX_ROOTS, fill_value=0)
        valid = jnp.arange(_PW_MAX_ROOTS) < jnp.sum(has_root)
        a, b, tgt = grid[idx], grid[idx + 1], target[idx]
        increasing = g_grid[idx + 1] > g_grid[idx]

        def bisect(_, ab):
            a, b = ab
            mid = 0.5 * (a + b)
            below = (g(mid) < tgt) == increasing  # the root lies right of mid
            return jnp.where(below, mid, a), jnp.where(below, b, mid)

        a, b = jax.lax.fori_loop(0, _PW_BISECT, bisect, (a, b))
        phi = 0.5 * (a + b)
        r, t = rho * jnp.cos(phi), rho * jnp.sin(phi)
        log_pf = (
            -0.5 * ((r - 1.0) / _PW_RADIAL_SD) ** 2
            - 0.5 * (t / _PW_TANGENTIAL_SD) ** 2
            - LOG_2PI
            - math.log(_PW_RADIAL_SD * _PW_TANGENTIAL_SD)
        )
        dg = 1.0 + _PW_RATE * jnp.exp(r) * t  # g'(phi) = 1 + 0.25 exp(rho cos phi) rho sin phi
        contrib = log_pf - math.log(4.0) - jnp.log(jnp.abs(dg))
        return jnp.where(valid, contrib, -jnp.inf)

    parts = jax.vmap(per_class)(jnp.arange(_PW_CLASSES))
    return logsumexp(parts) - math.log(_PW_CLASSES)


# ----------------------------------------------------------------------------- registry

TOY_DATASETS: dict[str, Toy2D] = {
    "8gaussians": Toy2D(
        "8gaussians",
        _8g_sample,
        _8g_log_prob,
        "Equal mixture of 8 Gaussians, centres 4 (cos, sin)(k pi / 4), sd 0.5, all divided by 1.414.",
    ),
    "checkerboard": Toy2D(
        "checkerboard",
        _cb_sample,
        _cb_log_prob,
        "x1 ~ U[-2, 2); x2 ~ U[0, 1) - 2 Bernoulli(1/2) + (floor(x1) mod 2); scaled by 2. "
        "Uniform on 8 of the 16 squares of [-4, 4)^2: density 1/32, entropy ln 32.",
    ),
    "rings": Toy2D(
        "rings",
        _rings_sampler(_RINGS_RADII, _RINGS_SIGMA),
        _rings_log_prob(_RINGS_RADII, _RINGS_SIGMA),
        "Equal mixture of 4 circles of radius 3, 2.25, 1.5, 0.75 (angle uniform) plus N(0, 0.08^2) noise.",
    ),
    "circles": Toy2D(
        "circles",
        _rings_sampler(_CIRCLES_RADII, _CIRCLES_SIGMA),
        _rings_log_prob(_CIRCLES_RADII, _CIRCLES_SIGMA),
        "make_circles(factor=0.5, noise=0.08) scaled by 3: circles of radius 3 and 1.5, noise sd 0.24.",
    ),
    "moons": Toy2D(
        "moons",
        _moons_sample,
        _moons_log_prob,
        "make_moons(noise=0.1) scaled by 2, shifted by (-1, -0.2): two half circles of radius 2, "
        "t ~ U[0, pi], noise sd 0.2.",
    ),
    "swissroll": Toy2D(
        "swissroll",
        _swiss_sample,
        _swiss_log_prob,
        "make_swiss_roll(noise=1.0), columns (x, z), divided by 5: (t cos t, t sin t) / 5, "
        "t ~ U[1.5 pi, 4.5 pi], noise sd 0.2.",
    ),
    "2spirals": Toy2D(
        "2spirals",
        _spirals_sample,
        _spirals_log_prob,
        "n = 3 pi sqrt(U); point = (-n cos n + U[0, .5], n sin n + U[0, .5]), negated for the second spiral, "
        "divided by 3, plus N(0, 0.1^2) noise.",
    ),
    "pinwheel": Toy2D(
        "pinwheel",
        _pinwheel_sample,
        _pinwheel_log_prob,
        "5 arms: (r, t) ~ N((1, 0), diag(0.3^2, 0.1^2)) rotated by -(2 pi k / 5 + 0.25 exp(r)), scaled by 2.",
    ),
}


def get_toy(name: str) -> Toy2D:
    """The toy density by name (one of TOY_DATASETS)."""
    try:
        return TOY_DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown 2D dataset {name!r}; available: {', '.join(TOY_DATASETS)}") from None


# the mode centres of the datasets made of separate modes (for mode-coverage checks of samples)
MODE_CENTERS: dict[str, np.ndarray] = {"8gaussians": _8G_CENTERS}
