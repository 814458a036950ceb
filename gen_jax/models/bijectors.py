"""Bijectors distrax does not have, or has in a form too slow for the hot path.

- `RationalQuadraticSpline`: the same spline and parameterisation as
  `distrax.RationalQuadraticSpline(..., boundary_slopes="identity")` (tested equal to it),
  written on whole (bins, elements) arrays (one-hot weights pick every bin parameter) instead of distrax's
  per-scalar `jnp.vectorize`. It compiles several times faster and its gradient runs faster;
  it takes the 3K - 1 parameters the spline actually uses (distrax takes 3K + 1 and ignores
  the two boundary slopes), on any axis (`param_axis`).
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

Array = jax.Array


def _bin_sizes(raw: Array, total: float, min_size: float) -> Array:
    """Softmax over the bin axis (the first), scaled to `total` with a floor of `min_size` per bin."""
    k = raw.shape[0]
    return jax.nn.softmax(raw, axis=0) * (total - k * min_size) + min_size


def _knot_slopes(raw: Array, min_slope: float) -> Array:
    offset = jnp.log(jnp.expm1(jnp.asarray(1.0 - min_slope, raw.dtype)))  # raw = 0 gives slope 1
    return jax.nn.softplus(raw + offset) + min_slope


def _knots(sizes: Array, bound: float) -> Array:
    """(K + 1, N) knot positions from (K, N) bin sizes summing to 2 bound; the last is pinned to
    exactly +bound."""
    edge = jnp.full((1, sizes.shape[1]), bound, sizes.dtype)
    return jnp.concatenate([-edge, jnp.cumsum(sizes[:-1], axis=0) - bound, edge], axis=0)


@jax.custom_jvp
def _pick(hot: Array, rows: tuple[Array, ...]) -> tuple[Array, ...]:
    """sum(hot * row, axis=0) for each (K, N) row table: each element's entry in its bin.

    Its JVP is the plain one (the 0/1 weights carry no tangent) behind an optimization barrier, so
    that in reverse mode (the transposed JVP) the cotangents g are materialized before hot * g:
    left alone, XLA fuses the whole elementwise chain producing g into the (K, N) broadcast and
    recomputes it K times. Every mode of autodiff works (forward, reverse, any order)."""
    return tuple(jnp.sum(hot * r, axis=0) for r in rows)


@_pick.defjvp
def _pick_jvp(primals, tangents):
    hot, rows = primals
    _, d_rows = tangents
    d_out = jax.lax.optimization_barrier(tuple(jnp.sum(hot * d, axis=0) for d in d_rows))
    return _pick(hot, rows), d_out


class RationalQuadraticSpline(distrax.Bijector):
    """Elementwise monotone rational-quadratic spline on [-bound, bound], identity outside.

    params: 3K - 1 unconstrained values per element, on axis `param_axis` (default the last, as
    distrax): K bin widths, K bin heights, K - 1 interior knot slopes (the boundary slopes are 1,
    so the map is C1 at the boundary). All zeros is the identity. Durkan et al. 2019, "Neural
    Spline Flows", eqs. 4-8 and appendix A.

    Internally every bin quantity is a (K or K + 1, N) array, bins leading and the N elements
    contiguous: the softmax, the knots' running sums and picking each element's bin (one-hot
    weights summed over the bin axis) are short reductions over the leading axis, which XLA runs
    as vectorised loops over N. No gather (its gradient is a slow scatter-add on CPU), no
    per-scalar `jnp.vectorize` (distrax). `param_axis=0` (parameters leading, as the coupling
    flows' feature-major conditioners produce them) needs no transpose.
    """

    def __init__(
        self,
        params: Array,
        bound: float,
        min_bin_size: float = 1e-4,
        min_knot_slope: float = 1e-4,
        param_axis: int = -1,
    ):
        super().__init__(event_ndims_in=0)
        params = jnp.moveaxis(params, param_axis, 0)
        if params.shape[0] % 3 != 2:
            raise ValueError(f"spline params need 3K - 1 values per element, got {params.shape[0]}")
        k = (params.shape[0] + 1) // 3
        self.num_bins, self.bound, self.shape = k, bound, params.shape[1:]  # bound: a float or a scalar
        widths, heights, slopes = jnp.split(params.reshape(params.shape[0], -1), [k, 2 * k], axis=0)
        self.x_knots = _knots(_bin_sizes(widths, 2 * bound, min_bin_size), bound)
        self.y_knots = _knots(_bin_sizes(heights, 2 * bound, min_bin_size), bound)
        one = jnp.ones((1, self.x_knots.shape[1]), params.dtype)
        self.slopes = jnp.concatenate([one, _knot_slopes(slopes, min_knot_slope), one], axis=0)

    def _flat(self, v: Array) -> Array:
        """v as (1, N), broadcast to the parameters' element shape."""
        return jnp.broadcast_to(v, jnp.broadcast_shapes(v.shape, self.shape)).reshape(1, -1)

    def _bin(self, knots: Array, v: Array):
        """For v (1, N) in [-bound, bound]: the left x and y knot, width, height and end slopes of
        its bin (v in [knot_i, knot_i+1); the last bin includes +bound), each (N,).

        Picked by one-hot weights summed over the bin axis: on CPU the gradient of a multiply is
        a multiply, where a gather's is a slow scatter-add."""
        below = jnp.concatenate([v < knots[1:-1], jnp.ones_like(v, bool)], axis=0)
        hot = ((v >= knots[:-1]) & below).astype(v.dtype)  # (K, N)
        xk, yk, d = self.x_knots, self.y_knots, self.slopes
        return _pick(hot, (xk[:-1], xk[1:] - xk[:-1], yk[:-1], yk[1:] - yk[:-1], d[:-1], d[1:]))

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        shape = jnp.broadcast_shapes(x.shape, self.shape)
        v = self._flat(x)
        inside = jnp.abs(v[0]) < self.bound
        xc = jnp.clip(v, -self.bound, self.bound)  # the unused branch stays finite (no NaN gradients)
        x0, w, y0, h, d0, d1 = self._bin(self.x_knots, xc)
        s = h / w
        xi = jnp.clip((xc[0] - x0) / w, 0.0, 1.0)
        t = xi * (1 - xi)
        denom = s + (d0 + d1 - 2 * s) * t
        y = y0 + h * (s * xi**2 + d0 * t) / denom
        dydx = s**2 * (d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2) / denom**2
        y = jnp.where(inside, y, v[0]).reshape(shape)
        return y, jnp.where(inside, jnp.log(dydx), 0.0).reshape(shape)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        shape = jnp.broadcast_shapes(y.shape, self.shape)
        v = self._flat(y)
        inside = jnp.abs(v[0]) < self.bound
        yc = jnp.clip(v, -self.bound, self.bound)
        x0, w, y0, h, d0, d1 = self._bin(self.y_knots, yc)
        s = h / w
        dy = yc[0] - y0
        sum_d = d0 + d1 - 2 * s
        a = h * (s - d0) + dy * sum_d
        b = h * d0 - dy * sum_d
        c = -s * dy
        disc = jnp.maximum(b**2 - 4 * a * c, 0.0)
        xi = jnp.clip(2 * c / (-b - jnp.sqrt(disc)), 0.0, 1.0)  # the stable root (b > 0 inside a bin)
        t = xi * (1 - xi)
        denom = s + sum_d * t
        dydx = s**2 * (d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2) / denom**2
        x = jnp.where(inside, x0 + xi * w, v[0]).reshape(shape)
        return x, jnp.where(inside, -jnp.log(dydx), 0.0).reshape(shape)


# ----------------------------------------------------------------------------- image bijectors
# Used by the multi-scale image flow (`gen_jax.models.image_flows`). Each acts on images of
# shape (..., H, W, C) (event_ndims 3) with any leading batch shape, and its `forward` is the
# normalizing direction (data -> latent), as in Glow; the flow hands `distrax.Inverse` of the
# composed map to `distrax.Transformed`.


def _image_shape(x: Array, what: str) -> tuple[tuple[int, ...], int, int, int]:
    if x.ndim < 3:
        raise ValueError(f"{what} acts on images (..., H, W, C); got an array of shape {x.shape}")
    *batch, h, w, c = x.shape
    return tuple(batch), h, w, c


def _per_channel(v: Array, x: Array) -> Array:
    """A (C,) vector shaped to broadcast against x (..., C) without implicit rank promotion."""
    return v.astype(x.dtype).reshape((1,) * (x.ndim - 1) + (-1,))


class Squeeze(distrax.Bijector):
    """Space to depth: (..., H, W, C) -> (..., H/f, W/f, f*f*C), log-det 0 (Dinh et al. 2017, sec. 3.6).

    Each f x f patch of pixels becomes f*f channels of one pixel (row-major within the patch).
    """

    def __init__(self, factor: int = 2):
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)
        self.factor = int(factor)

    def _perm(self, n: int) -> tuple[int, ...]:  # swaps the two middle axes; its own inverse
        return tuple(range(n)) + (n, n + 2, n + 1, n + 3, n + 4)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        batch, h, w, c = _image_shape(x, "Squeeze")
        f = self.factor
        if h % f or w % f:
            raise ValueError(
                f"Squeeze by {f} needs height and width divisible by {f}, got {h}x{w}; pad the images "
                "or use fewer levels"
            )
        y = x.reshape(batch + (h // f, f, w // f, f, c)).transpose(self._perm(len(batch)))
        return y.reshape(batch + (h // f, w // f, f * f * c)), jnp.zeros(batch, x.dtype)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        batch, h, w, c = _image_shape(y, "Squeeze")
        f = self.factor
        if c % (f * f):
            raise ValueError(f"Squeeze.inverse by {f} needs channels divisible by {f * f}, got {c}")
        x = y.reshape(batch + (h, w, f, f, c // (f * f))).transpose(self._perm(len(batch)))
        return x.reshape(batch + (h * f, w * f, c // (f * f))), jnp.zeros(batch, y.dtype)


class ActNorm(distrax.Bijector):
    """Per-channel affine y = (x + bias) * exp(log_scale) (Kingma & Dhariwal 2018, sec. 3.1).

    log|det| = H W sum(log_scale). Glow initialises it from data so that y has zero mean and unit
    variance per channel on a first batch: `actnorm_init(x)` returns those parameters.
    """

    def __init__(self, bias: Array, log_scale: Array):
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)
        self.bias, self.log_scale = bias, log_scale

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        batch, h, w, _ = _image_shape(x, "ActNorm")
        y = (x + _per_channel(self.bias, x)) * jnp.exp(_per_channel(self.log_scale, x))
        return y, jnp.broadcast_to(h * w * jnp.sum(self.log_scale).astype(x.dtype), batch)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        batch, h, w, _ = _image_shape(y, "ActNorm")
        x = y * jnp.exp(-_per_channel(self.log_scale, y)) - _per_channel(self.bias, y)
        return x, jnp.broadcast_to(-h * w * jnp.sum(self.log_scale).astype(y.dtype), batch)


def actnorm_init(x: Array, eps: float = 1e-6) -> dict:
    """ActNorm parameters making a batch x (..., C) zero-mean and unit-variance per channel."""
    axes = tuple(range(x.ndim - 1))
    return {"bias": -jnp.mean(x, axis=axes), "log_scale": -jnp.log(jnp.std(x, axis=axes) + eps)}


class Invertible1x1Conv(distrax.Bijector):
    """Invertible 1x1 convolution y_ij = W x_ij in LU form (Kingma & Dhariwal 2018, sec. 3.2).

    W = P L (U + diag(sign * exp(log_s))) with P a fixed permutation, L unit lower-triangular,
    U strictly upper-triangular and `sign` fixed: log|det| = H W sum(log_s) at O(C) cost, and the
    inverse is two triangular solves. `lower`/`upper` are unconstrained (C, C) arrays (only their
    strict triangles are used); `perm` (C, C) and `sign` (C,) are constants of the architecture.
    """

    def __init__(self, lower: Array, upper: Array, log_s: Array, perm: Array, sign: Array):
        super().__init__(event_ndims_in=3, is_constant_jacobian=True)
        self.lower, self.upper, self.log_s, self.perm, self.sign = lower, upper, log_s, perm, sign

    def _factors(self, dtype):
        c = self.log_s.shape[-1]
        eye = jnp.eye(c, dtype=dtype)
        lower = jnp.tril(self.lower.astype(dtype), -1) + eye
        upper = jnp.triu(self.upper.astype(dtype), 1) + jnp.diag(
            self.sign.astype(dtype) * jnp.exp(self.log_s.astype(dtype))
        )
        return self.perm.astype(dtype), lower, upper

    def weight(self, dtype=jnp.float32) -> Array:
        p, lower, upper = self._factors(dtype)
        return p @ lower @ upper

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        batch, h, w, _ = _image_shape(x, "Invertible1x1Conv")
        y = jnp.einsum("...d,cd->...c", x, self.weight(x.dtype))
        return y, jnp.broadcast_to(h * w * jnp.sum(self.log_s).astype(x.dtype), batch)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        batch, h, w, _ = _image_shape(y, "Invertible1x1Conv")
        p, lower, upper = self._factors(y.dtype)
        solve = jax.scipy.linalg.solve_triangular
        w_inv = solve(upper, solve(lower, p.T, lower=True, unit_diagonal=True), lower=False)
        x = jnp.einsum("...d,cd->...c", y, w_inv)
        return x, jnp.broadcast_to(-h * w * jnp.sum(self.log_s).astype(y.dtype), batch)


def lu_init(key_or_seed, channels: int) -> dict:
    """A random rotation in the LU form of `Invertible1x1Conv` (numpy, on the host).

    Returns {"lower", "upper", "log_s"} (the trainable part) and {"perm", "sign"} (the constants).
    """
    import numpy as np
    import scipy.linalg

    rng = np.random.default_rng(key_or_seed)
    q, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
    p, lower, upper = scipy.linalg.lu(q)
    s = np.diag(upper)
    return {
        "lower": np.tril(lower, -1).astype(np.float32),
        "upper": np.triu(upper, 1).astype(np.float32),
        "log_s": np.log(np.abs(s)).astype(np.float32),
        "perm": p.astype(np.float32),
        "sign": np.sign(s).astype(np.float32),
    }


class ScanChain(distrax.Bijector):
    """K bijectors of one structure with stacked parameters, run as one `lax.scan`.

    `make(p)` builds the bijector of one layer from its slice `p` of `stacked` (a pytree whose
    leaves have a leading axis K). forward applies layer 0 first (the opposite of
    `distrax.Chain`'s order); inverse runs the layers backwards. Compile time does not grow with K.
    `unroll` is `lax.scan`'s: True unrolls all K layers, which on XLA:CPU makes the gradient of a
    stack of convolutional steps several times faster, for a longer compile.
    """

    def __init__(self, make, stacked, event_ndims: int, unroll: int | bool = 1):
        super().__init__(event_ndims_in=event_ndims)
        self._make, self._stacked, self.unroll = make, stacked, unroll

    def _run(self, x: Array, reverse: bool) -> tuple[Array, Array]:
        batch = x.shape[: x.ndim - self.event_ndims_in]

        def body(carry, p):
            v, total = carry
            bij = self._make(p)
            v, ld = bij.inverse_and_log_det(v) if reverse else bij.forward_and_log_det(v)
            return (v, total + ld), None

        (y, log_det), _ = jax.lax.scan(
            body, (x, jnp.zeros(batch, x.dtype)), self._stacked, reverse=reverse, unroll=self.unroll
        )
        return y, log_det

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        return self._run(x, reverse=False)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        return self._run(y, reverse=True)


class MultiScale(distrax.Bijector):
    """One scale of a multi-scale flow (Dinh et al. 2017, sec. 3.6): image -> flat latent.

    forward: h = transform(x) (shape `shape` = (H, W, C)); the channels split into keep =
    h[..., :C//2] and out = h[..., C//2:]; out is factored out (flattened into the latent) and
    keep goes on through `rest` (the next scale, another MultiScale, or None to end there). The
    latent is concat(flat(out), rest(keep)); with rest=None it is flat(h). log|det| is the sum of
    transform's and rest's. event_ndims 3 -> 1.
    """

    def __init__(self, transform: distrax.Bijector, shape: tuple[int, int, int], rest: MultiScale | None):
        super().__init__(event_ndims_in=3, event_ndims_out=1)
        if transform.event_ndims_in != 3 or transform.event_ndims_out != 3:
            raise ValueError("MultiScale's transform must map images to images (event_ndims 3 -> 3)")
        self.transform, self.shape, self.rest = transform, tuple(shape), rest
        h, w, c = self.shape
        self.num_keep = 0 if rest is None else c // 2
        self.num_out = h * w * (c - self.num_keep)  # latent dimensions factored out at this scale

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        h, log_det = self.transform.forward_and_log_det(x)
        batch = h.shape[:-3]
        if h.shape[-3:] != self.shape:
            raise ValueError(f"MultiScale expected transform(x) of shape {self.shape}, got {h.shape[-3:]}")
        out = h[..., self.num_keep :].reshape(batch + (self.num_out,))
        if self.rest is None:
            return out, log_det
        z_rest, ld_rest = self.rest.forward_and_log_det(h[..., : self.num_keep])
        return jnp.concatenate([out, z_rest], axis=-1), log_det + ld_rest

    def inverse_and_log_det(self, z: Array) -> tuple[Array, Array]:
        batch = z.shape[:-1]
        hh, ww, c = self.shape
        out = z[..., : self.num_out].reshape(batch + (hh, ww, c - self.num_keep))
        if self.rest is None:
            h, log_det = out, jnp.zeros(batch, z.dtype)
        else:
            keep, log_det = self.rest.inverse_and_log_det(z[..., self.num_out :])
            h = jnp.concatenate([keep, out], axis=-1)
        x, ld = self.transform.inverse_and_log_det(h)
        return x, log_det + ld
