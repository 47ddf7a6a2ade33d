"""conv2d on the CPU with Numba: contiguous column copies feeding BLAS, one share of the
batch per core.

The arithmetic is the GEMM formulation of :mod:`conv_numpy` (see its docstring); what Numba
replaces is the data movement around it, which dominates for the small channel counts of
real networks.

* Wide rows (stride 1).  Read the zero-padded input of one channel as a single long row,
  x_flat[c, r*Wp + q] = x_pad[c, r, q] with Wp = W + 2*pw.  Output position (oh, ow) and
  tap (i, j) read x_pad[c, oh + i*dh, ow + j*dw], which is

      x_flat[c, p + i*dh*Wp + j*dw]      at the "wide" position p = oh*Wp + ow,

  so over p = 0 .. H_out*Wp - 1 the column row of tap (i, j) is one contiguous slice of
  x_flat shifted by i*dh*Wp + j*dw: im2col becomes kh*kw long copies per channel.  The
  GEMM then also computes Wp - W_out "wide" columns per output row that are not outputs
  (2 of 34 for a 3x3, pad 1 layer on 32 columns: 6% more multiply-adds); they are
  dropped when the result is cropped back to W_out.
* Stride phases (any stride).  With stride (sh, sw), split the padded input into sh*sw
  phase planes P[a, b][r, q] = x_pad[r*sh + a, q*sw + b], each Hq x Wq with
  Hq = ceil(Hp / sh), Wq = ceil(Wp / sw).  Tap (i, j) of output (oh, ow) reads
  x_pad[oh*sh + i*dh, ow*sw + j*dw] = P[(i*dh) % sh, (j*dw) % sw][oh + (i*dh) // sh,
  ow + (j*dw) // sw]: a stride-1 read of one phase plane, so every column row is again
  one contiguous slice (wide position p = oh*Wq + ow), after one pass that deals the
  input out to its phases.  Stride 1 is the case of a single phase.
* Layout.  The columns of a piece of m images are (C_in*kh*kw, m*L) with L the wide
  length of one image, so the forward is one GEMM (C_out, K) @ (K, m*L) per group, the
  weight gradient (K, m*L) @ (m*L, C_out), and the input gradient (K, C_out) @ (C_out,
  m*L) followed by contiguous additions of each column row back into the phase planes
  (the adjoint of the copy).  gy enters both gradients "widened", with zeros in the extra
  columns, so that those add nothing.  A piece is sized so its columns stay in one core's
  L2 cache (``_COLUMN_BUDGET_BYTES``).  The input gradient of a stride-1 conv with
  C_out <= C_in is computed as the stride-1 conv of gy (padded by d*(k-1) - p) with the
  weight flipped in space and transposed in channels, whose columns are then the smaller.
* Direct (one input channel per group: a first layer on a grey image, a depthwise conv).
  A GEMM with K = kh*kw is too thin to pay for the columns; instead each output row
  accumulates w[o, c, i, j] times the slice of its phase plane, tap after tap, in an
  L1-sized accumulator (``_direct_forward_kernel``), and the gradients are the matching
  dot products and multiply-adds over the same slices.
* Threads.  :func:`batch_workers.run_shares` cuts the batch into one share per BLAS thread;
  each worker runs its share start to finish with a one-thread BLAS (copies, GEMM,
  copies), so no core waits while another copies and no BLAS thread spins beside a copy.
  The kernels release the GIL (``nogil=True``) and write only their share's outputs.
* The general ``im2col`` / ``col2im`` kernels (parallel over image and channel, padding
  never materialised) are kept as the reference the tests compare against
  (``_SHIFTED = False``).

Inner loops index slices from 0 (``run = row[src:src + n]; run[p]``): an index such as
``row[src + p]`` could be negative as far as Numba knows, and its wraparound check keeps
LLVM from vectorising the loop (measured 4x slower on a 896-long multiply-add).  Every
kernel takes all strides, paddings and dilations as plain ints, so Numba compiles one
specialisation per dtype (float32, float64) and caches it on disk (``cache=True``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .batch_workers import run_shares
from .conv_numpy import gemm_forward, gemm_input, gemm_weight
from .numba_threads import prefer_parking_threads
from .window import conv_output_hw

prefer_parking_threads()

__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"]


@njit(cache=True, inline="always")
def _valid_span(out_size, size, stride, offset):
    """Output positions o in [lo, hi) with 0 <= o*stride + offset < size."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if size - 1 - offset >= 0:
        hi = (size - 1 - offset) // stride + 1
    if hi > out_size:
        hi = out_size
    if lo > hi:
        lo = hi
    return lo, hi


@njit(parallel=True, cache=True)
def _im2col_kernel(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    n_img, n_chan, h, w = x.shape
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for i in range(kh):
            oh_lo, oh_hi = _valid_span(out_h, h, sh, i * dh - ph)
            for j in range(kw):
                ow_lo, ow_hi = _valid_span(out_w, w, sw, j * dw - pw)
                row = (c * kh + i) * kw + j
                for oh in range(out_h):
                    base = oh * out_w
                    if oh < oh_lo or oh >= oh_hi:
                        for ow in range(out_w):
                            cols[n, row, base + ow] = 0
                        continue
                    ih = oh * sh - ph + i * dh
                    for ow in range(ow_lo):
                        cols[n, row, base + ow] = 0
                    iw0 = j * dw - pw
                    if sw == 1:  # unit stride: a contiguous copy that LLVM vectorises
                        for ow in range(ow_lo, ow_hi):
                            cols[n, row, base + ow] = x[n, c, ih, ow + iw0]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            cols[n, row, base + ow] = x[n, c, ih, ow * sw + iw0]
                    for ow in range(ow_hi, out_w):
                        cols[n, row, base + ow] = 0


@njit(parallel=True, cache=True)
def _col2im_kernel(dcols, gx, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w):
    n_img, n_chan, h, w = gx.shape
    for nc in prange(n_img * n_chan):
        n = nc // n_chan
        c = nc - n * n_chan
        for i in range(kh):
            oh_lo, oh_hi = _valid_span(out_h, h, sh, i * dh - ph)
            for j in range(kw):
                ow_lo, ow_hi = _valid_span(out_w, w, sw, j * dw - pw)
                row = (c * kh + i) * kw + j
                iw0 = j * dw - pw
                for oh in range(oh_lo, oh_hi):
                    ih = oh * sh - ph + i * dh
                    base = oh * out_w
                    if sw == 1:
                        for ow in range(ow_lo, ow_hi):
                            gx[n, c, ih, ow + iw0] += dcols[n, row, base + ow]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            gx[n, c, ih, ow * sw + iw0] += dcols[n, row, base + ow]


def im2col(x, kernel_hw, stride, padding, dilation):
    """Columns (N, C*kh*kw, H_out*W_out) of ``x`` (N, C, H, W); same layout as conv_numpy.im2col."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out_h, out_w = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
    cols = np.empty((n, c * kernel_hw[0] * kernel_hw[1], out_h * out_w), dtype=x.dtype)
    _im2col_kernel(x, cols, kernel_hw[0], kernel_hw[1], stride[0], stride[1],
                   padding[0], padding[1], dilation[0], dilation[1], out_h, out_w)
    return cols


def col2im(dcols, in_hw, kernel_hw, stride, padding, dilation):
    """Adjoint of :func:`im2col`: (N, C*kh*kw, L) -> (N, C, H, W)."""
    dcols = np.ascontiguousarray(dcols)
    kh, kw = kernel_hw
    n, c = dcols.shape[0], dcols.shape[1] // (kh * kw)
    out_h, out_w = conv_output_hw(in_hw, kernel_hw, stride, padding, dilation)
    gx = np.zeros((n, c, in_hw[0], in_hw[1]), dtype=dcols.dtype)
    _col2im_kernel(dcols, gx, kh, kw, stride[0], stride[1],
                   padding[0], padding[1], dilation[0], dilation[1], out_h, out_w)
    return gx


# Columns for a whole batch can be far larger than the caches (32 x 576 x 1024 floats for a
# VGG layer); the drivers below therefore walk the batch in chunks whose columns fit in
# about this many bytes, so that the GEMM reads them back from cache (the stride-1 path
# also cuts one image into bands of output rows when its columns alone are larger).
# Measured on the VGG-like layer: 2.5-8 MiB equally fast, 1 MiB and less 10-15% slower.
_COLUMN_BUDGET_BYTES = 4 << 20


def _batch_chunks(x_shape, kernel_hw, out_hw, itemsize):
    n, c = x_shape[0], x_shape[1]
    per_image = c * kernel_hw[0] * kernel_hw[1] * out_hw[0] * out_hw[1] * itemsize
    step = max(1, min(n, _COLUMN_BUDGET_BYTES // max(per_image, 1)))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


# ---------------------------------------------------------- wide rows of the stride phases
# False sends every conv through the general im2col/col2im kernels (tests compare both)
_SHIFTED = True


@njit(cache=True, nogil=True, inline="always")
def _tap(i, j, sh, sw, dh, dw, wq):
    """(phase plane, flat shift) that tap (i, j) reads: x_pad[oh*sh + i*dh, ow*sw + j*dw] =
    planes[phase][oh*Wq + ow + shift] (see the module docstring)."""
    phase = ((i * dh) % sh) * sw + (j * dw) % sw
    return phase, ((i * dh) // sh) * wq + (j * dw) // sw


@njit(cache=True, nogil=True, inline="always")
def _fill_phase_planes(plane, planes, ph, pw, sh, sw, wq):
    """planes[(r % sh)*sw + q % sw, (r // sh)*Wq + q // sw] = x_pad[r, q] for the interior
    (r, q) = (r' + ph, q' + pw) of one padded image plane ``plane`` (H, W)."""
    h, w = plane.shape
    for r in range(h):
        a, base = (r + ph) % sh, ((r + ph) // sh) * wq
        for b in range(sw):  # input columns q with (q + pw) % sw == b
            q0 = (b - pw) % sw
            dst = base + (q0 + pw) // sw
            count = (w - q0 + sw - 1) // sw
            out, src = planes[a * sw + b, dst:dst + count], plane[r, q0:]
            for t in range(count):  # slices indexed from 0: no negative-index checks, SIMD
                out[t] = src[t * sw]


@njit(cache=True, nogil=True)
def _phase_columns_kernel(x, x_ph, cols, ph, pw, kh, kw, sh, sw, dh, dw, wq, p0, fill):
    """cols[(c*kh + i)*kw + j, n*L + p] = x_ph[n, c, phase(i, j), p0 + shift(i, j) + p] (see
    the module docstring); with ``fill`` the phase planes ``x_ph`` of each image are first
    filled from x.  The positions of ``x_ph`` that hold padding are zero and never written."""
    m, n_chan, h, w = x.shape
    length = cols.shape[1] // m
    for n in range(m):
        for c in range(n_chan):
            if fill:
                _fill_phase_planes(x[n, c], x_ph[n, c], ph, pw, sh, sw, wq)
            for i in range(kh):
                for j in range(kw):
                    phase, src = _tap(i, j, sh, sw, dh, dw, wq)
                    src += p0
                    row = (c * kh + i) * kw + j
                    out, run = cols[row, n * length:(n + 1) * length], x_ph[n, c, phase, src:src + length]
                    for p in range(length):
                        out[p] = run[p]


@njit(cache=True, nogil=True)
def _phase_scatter_kernel(dcols, g_ph, kh, kw, sh, sw, dh, dw, wq, p0):
    """The adjoint of the gather above: g_ph[n, c, phase(i, j), p0 + shift(i, j) + p] +=
    dcols[(c*kh + i)*kw + j, n*L + p], contiguous runs of additions."""
    m, n_chan = g_ph.shape[0], g_ph.shape[1]
    length = dcols.shape[1] // m
    for n in range(m):
        for c in range(n_chan):
            for i in range(kh):
                for j in range(kw):
                    phase, dst = _tap(i, j, sh, sw, dh, dw, wq)
                    dst += p0
                    row = (c * kh + i) * kw + j
                    out, run = g_ph[n, c, phase, dst:dst + length], dcols[row, n * length:(n + 1) * length]
                    for p in range(length):
                        out[p] += run[p]


@njit(cache=True, nogil=True)
def _phase_extract_kernel(g_ph, gx, ph, pw, sh, sw, wq):
    """gx[n, c, r, q] = g_ph[n, c, phase of (r + ph, q + pw), its flat index]: the interior
    of the padded input gradient, read back from the phase planes."""
    m, n_chan, h, w = gx.shape
    for n in range(m):
        for c in range(n_chan):
            for r in range(h):
                a, base = (r + ph) % sh, ((r + ph) // sh) * wq
                for b in range(sw):
                    q0 = (b - pw) % sw
                    src = base + (q0 + pw) // sw
                    count = (w - q0 + sw - 1) // sw
                    out, run = gx[n, c, r, q0:], g_ph[n, c, a * sw + b, src:src + count]
                    for t in range(count):
                        out[t * sw] = run[t]


@njit(cache=True, nogil=True, inline="always")
def _widen_row(g, wide, wq):
    """wide[r*Wq + q] = g[r, q] for q < W_out, 0 for the extra columns."""
    rows, w = g.shape
    for r in range(rows):
        out, run = wide[r * wq:(r + 1) * wq], g[r]
        for q in range(w):
            out[q] = run[q]
        for q in range(w, wq):
            out[q] = 0


@njit(cache=True, nogil=True)
def _crop_kernel(wide, out, wq):
    """out[n, c, r, q] = wide[c, n*L + r*Wq + q] for q < W_out (L = rows*Wq): drop the extra
    wide columns and bring the channels back inside each image."""
    m, n_chan, rows, w = out.shape
    length = rows * wq
    for n in range(m):
        for c in range(n_chan):
            for r in range(rows):
                src = n * length + r * wq
                run, dst = wide[c, src:src + w], out[n, c, r]
                for q in range(w):
                    dst[q] = run[q]


@njit(cache=True, nogil=True)
def _widen_kernel(g, wide, wq):
    """wide[c, n*L + r*Wq + q] = g[n, c, r, q] for q < W_out and 0 for W_out <= q < Wq."""
    m, n_chan, rows, w = g.shape
    length = rows * wq
    for n in range(m):
        for c in range(n_chan):
            for r in range(rows):
                dst = n * length + r * wq
                _widen_row(g[n, c, r:r + 1], wide[c, dst:dst + wq], wq)


class _PhaseRows:
    """Geometry, work plan and scratch buffers of the wide phase-row columns.

    The work is cut so that one piece's columns fit in ``_COLUMN_BUDGET_BYTES`` (about one
    core's L2 cache, where the GEMM then finds them): several whole images when an image's
    columns are small, else bands of output rows of one image."""

    def __init__(self, x_shape, kernel_hw, stride, padding, dilation, dtype, scratch=True):
        n, c_in, h, w = x_shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_hw, stride, padding, dilation
        hp, wp = h + 2 * ph, w + 2 * pw
        self.hq, self.wq = -(-hp // sh), -(-wp // sw)  # size of each phase plane
        self.out_hw = conv_output_hw((h, w), kernel_hw, stride, padding, dilation)
        self.geometry = (kh, kw, sh, sw, dh, dw)
        self.padding = (ph, pw)
        self.rows = c_in * kh * kw
        self.dtype = np.dtype(dtype)
        row_bytes = self.rows * self.wq * self.dtype.itemsize  # columns of one output row
        image_rows = self.out_hw[0]
        if image_rows * row_bytes <= _COLUMN_BUDGET_BYTES:
            self.images, self.band = max(1, min(n, _COLUMN_BUDGET_BYTES // max(image_rows * row_bytes, 1))), image_rows
        else:
            self.images, self.band = 1, max(1, _COLUMN_BUDGET_BYTES // row_bytes)
        # the last tap's run reaches (dw*(kw - 1)) // sw past the last phase row: a zero tail
        self.plane = (sh * sw, self.hq * self.wq + (dw * (kw - 1)) // sw)
        self.x_ph = np.zeros((self.images, c_in) + self.plane, dtype=dtype)
        self._cols = np.empty(self.images * self.rows * self.band * self.wq if scratch else 0, dtype=dtype)

    def pieces(self, n, first=0):
        """(images first + ..., output rows r0:r1) of each piece of n images, bands of an
        image in order."""
        for start in range(first, first + n, self.images):
            part = slice(start, min(start + self.images, first + n))
            for r0 in range(0, self.out_hw[0], self.band):
                yield part, r0, min(r0 + self.band, self.out_hw[0])

    def wide(self, channels, m, r0, r1):
        """An uninitialised (channels, m*(r1 - r0)*Wq) buffer for wide rows r0:r1 of m images."""
        return np.empty((channels, m * (r1 - r0) * self.wq), dtype=self.dtype)

    def scratch_columns(self, m, r0, r1):
        """The uninitialised (C_in*kh*kw, m*(r1 - r0)*Wq) columns buffer of a piece."""
        return self._cols[: self.rows * m * (r1 - r0) * self.wq].reshape(self.rows, -1)

    def columns(self, x_part, r0, r1):
        """Wide columns (C_in*kh*kw, m*(r1 - r0)*Wq) of output rows r0:r1 of the m images
        ``x_part``; the phase planes are refreshed when a piece starts at row 0."""
        cols = self.scratch_columns(x_part.shape[0], r0, r1)
        _phase_columns_kernel(x_part, self.x_ph, cols, *self.padding, *self.geometry, self.wq,
                              r0 * self.wq, r0 == 0)
        return cols

    def widen(self, g_part, r0, r1):
        """gy rows r0:r1 of m images in the wide layout (C_out, m*(r1 - r0)*Wq), zeros in the
        extra columns (so that they add nothing to a product)."""
        wide = self.wide(g_part.shape[1], g_part.shape[0], r0, r1)
        _widen_kernel(g_part[:, :, r0:r1], wide, self.wq)
        return wide


def _wide_forward(x, w, stride, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    n, c_out = x.shape[0], w.shape[0]
    og, k = c_out // groups, w.shape[1] * w.shape[2] * w.shape[3]
    y = np.empty((n, c_out) + conv_output_hw(x.shape[2:], w.shape[2:], stride, padding, dilation), dtype=x.dtype)
    w_g = np.ascontiguousarray(w).reshape(groups, og, k)

    def share(lo, hi):
        plan = _PhaseRows((hi - lo,) + x.shape[1:], w.shape[2:], stride, padding, dilation, x.dtype)
        for part, r0, r1 in plan.pieces(hi - lo, lo):
            cols = plan.columns(x[part], r0, r1)
            wide = plan.wide(c_out, part.stop - part.start, r0, r1)
            np.matmul(w_g, cols.reshape(groups, k, -1), out=wide.reshape(groups, og, -1))
            _crop_kernel(wide, y[part, :, r0:r1], plan.wq)

    run_shares(n, share)
    return y


def _flipped_weight(w, groups):
    """w (C_out, Cg, kh, kw) -> (C_in, Og, kh, kw) with w'[g*Cg + c, o, i, j] =
    w[g*Og + o, c, kh-1-i, kw-1-j]: the weight of the conv that is conv2d's input gradient."""
    c_out, cg, kh, kw = w.shape
    og = c_out // groups
    flipped = w.reshape(groups, og, cg, kh, kw).transpose(0, 2, 1, 3, 4)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(flipped).reshape(groups * cg, og, kh, kw)


def _stride1_input_padding(w_shape, in_hw, out_hw, padding, dilation):
    """Padding of the stride-1 conv of gy that gives the input gradient, or None when there
    is none (padding > dilation*(k - 1) would need a negative one)."""
    flipped = tuple(d * (k - 1) - p for d, k, p in zip(dilation, w_shape[2:], padding))
    if min(flipped) < 0:
        return None
    if conv_output_hw(out_hw, w_shape[2:], (1, 1), flipped, dilation) != tuple(in_hw):
        return None
    return flipped


def _wide_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    gy = np.ascontiguousarray(gy)
    n, c_out = gy.shape[:2]
    c_in = w.shape[1] * groups
    og, k = c_out // groups, w.shape[1] * w.shape[2] * w.shape[3]
    w_t = np.ascontiguousarray(np.ascontiguousarray(w).reshape(groups, og, k).swapaxes(1, 2))
    gx = np.empty((n, c_in) + tuple(in_hw), dtype=gy.dtype)

    def share(lo, hi):
        plan = _PhaseRows((hi - lo, c_in) + tuple(in_hw), w.shape[2:], stride, padding, dilation, gy.dtype)
        g_ph = plan.x_ph  # the phase planes of the padded input gradient, summed per piece
        for part, r0, r1 in plan.pieces(hi - lo, lo):
            m = part.stop - part.start
            if r0 == 0:
                g_ph[:m] = 0
            wide = plan.widen(gy[part], r0, r1)
            dcols = plan.scratch_columns(m, r0, r1)
            np.matmul(w_t, wide.reshape(groups, og, -1), out=dcols.reshape(groups, k, -1))
            _phase_scatter_kernel(dcols, g_ph[:m], *plan.geometry, plan.wq, r0 * plan.wq)
            if r1 == plan.out_hw[0]:
                _phase_extract_kernel(g_ph[:m], gx[part], *plan.padding, *plan.geometry[2:4], plan.wq)

    run_shares(n, share)
    return gx


def _wide_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    n, c_in = x.shape[:2]
    c_out = gy.shape[1]
    og, cg = c_out // groups, c_in // groups
    k = cg * kernel_hw[0] * kernel_hw[1]
    out_hw = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    if tuple(gy.shape[2:]) != out_hw or gy.shape[0] != n:
        raise ValueError(f"conv2d_backward_weight: gy of shape {gy.shape} does not match the conv2d output "
                         f"{out_hw} of input {x.shape} with kernel {tuple(kernel_hw)}")

    def share(lo, hi):
        plan = _PhaseRows((hi - lo,) + x.shape[1:], kernel_hw, stride, padding, dilation, x.dtype)
        gw_t = np.zeros((groups, k, og), dtype=x.dtype)  # gw transposed: cols @ gy^T
        product = np.empty_like(gw_t)
        for part, r0, r1 in plan.pieces(hi - lo, lo):
            cols = plan.columns(x[part], r0, r1)
            wide = plan.widen(gy[part], r0, r1)
            np.matmul(cols.reshape(groups, k, -1), wide.reshape(groups, og, -1).swapaxes(1, 2), out=product)
            gw_t += product
        return gw_t

    gw_t = sum(run_shares(n, share))
    gw = gw_t.transpose(0, 2, 1).reshape(c_out, cg, kernel_hw[0], kernel_hw[1])
    return np.ascontiguousarray(gw)



# ------------------------------------------------------------- direct, for few input channels
@njit(cache=True, nogil=True)
def _direct_forward_kernel(x, x_ph, w, y, acc, ph, pw, kh, kw, sh, sw, dh, dw, wq):
    """y[n, o] = sum over the taps (c, i, j) of w[o, c, i, j] * (phase row of tap (i, j) of
    channel c), accumulated in ``acc`` one band of wide output rows at a time: a run of
    multiply-adds over contiguous memory per tap, no columns in between."""
    m = x.shape[0]
    c_out, cg = w.shape[0], w.shape[1]
    og = c_out // (x.shape[1] // cg)
    out_h, out_w = y.shape[2], y.shape[3]
    band = max(1, acc.shape[0] // wq)
    for n in range(m):
        for c in range(x.shape[1]):
            _fill_phase_planes(x[n, c], x_ph[c], ph, pw, sh, sw, wq)
        for r0 in range(0, out_h, band):
            r1 = min(r0 + band, out_h)
            length = (r1 - r0) * wq
            for o in range(c_out):
                g = o // og
                for p in range(length):
                    acc[p] = 0
                for cc in range(cg):
                    for i in range(kh):
                        for j in range(kw):
                            phase, src = _tap(i, j, sh, sw, dh, dw, wq)
                            src += r0 * wq
                            run = x_ph[g * cg + cc, phase, src:src + length]
                            wv = w[o, cc, i, j]
                            for p in range(length):
                                acc[p] += wv * run[p]
                for r in range(r1 - r0):
                    out, run = y[n, o, r0 + r], acc[r * wq:r * wq + out_w]
                    for q in range(out_w):
                        out[q] = run[q]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _direct_weight_kernel(x, x_ph, gy, gw, wide, ph, pw, kh, kw, sh, sw, dh, dw, wq):
    """gw[o, c, i, j] += sum_p gy_wide[n, o, p] * (phase row of tap (i, j) of channel c)[p]:
    one dot product over contiguous memory per tap and image (reassociated into SIMD
    partial sums; NaN and inf still propagate)."""
    m = x.shape[0]
    c_out, cg = gw.shape[0], gw.shape[1]
    og = c_out // (x.shape[1] // cg)
    length = gy.shape[2] * wq
    for n in range(m):
        for c in range(x.shape[1]):
            _fill_phase_planes(x[n, c], x_ph[c], ph, pw, sh, sw, wq)
        for o in range(c_out):
            g = o // og
            _widen_row(gy[n, o], wide, wq)
            for cc in range(cg):
                for i in range(kh):
                    for j in range(kw):
                        phase, src = _tap(i, j, sh, sw, dh, dw, wq)
                        run = x_ph[g * cg + cc, phase, src:src + length]
                        total = gw[o, cc, i, j] * 0
                        for p in range(length):
                            total += wide[p] * run[p]
                        gw[o, cc, i, j] += total


@njit(cache=True, nogil=True)
def _direct_input_kernel(gy, w, gx, g_ph, wide, ph, pw, kh, kw, sh, sw, dh, dw, wq):
    """The adjoint of the direct forward: (phase row of tap (i, j) of channel c) +=
    w[o, c, i, j] * gy_wide[n, o], then the interior of the phase planes is read out."""
    m, c_in = gx.shape[0], gx.shape[1]
    c_out, cg = w.shape[0], w.shape[1]
    og = c_out // (c_in // cg)
    length = gy.shape[2] * wq
    for n in range(m):
        g_ph[:] = 0
        for o in range(c_out):
            g = o // og
            _widen_row(gy[n, o], wide, wq)
            for cc in range(cg):
                for i in range(kh):
                    for j in range(kw):
                        phase, dst = _tap(i, j, sh, sw, dh, dw, wq)
                        run = g_ph[g * cg + cc, phase, dst:dst + length]
                        wv = w[o, cc, i, j]
                        for p in range(length):
                            run[p] += wv * wide[p]
        _phase_extract_kernel(g_ph.reshape((1,) + g_ph.shape), gx[n:n + 1], ph, pw, sh, sw, wq)


# accumulator of the direct forward: 4096 values (16 KiB in float32) stay in the L1 cache
_DIRECT_ACC = 4096


_DIRECT_MAX_CHANNELS = 1
_DIRECT = True  # False: every conv through columns + GEMM (tests compare both)


def _direct_pays(w_shape):
    """The direct kernels instead of columns + GEMM: when a group has few input channels (a
    first layer on 1-3 channels, a depthwise conv), the GEMM is too thin to pay for the
    columns."""
    return _DIRECT and w_shape[1] <= _DIRECT_MAX_CHANNELS


def _direct_forward(x, w, stride, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    n, c_out = x.shape[0], w.shape[0]
    y = np.empty((n, c_out) + conv_output_hw(x.shape[2:], w.shape[2:], stride, padding, dilation), dtype=x.dtype)

    def share(lo, hi):
        plan = _PhaseRows((1,) + x.shape[1:], w.shape[2:], stride, padding, dilation, x.dtype, scratch=False)
        acc = np.empty(max(_DIRECT_ACC, plan.wq), dtype=x.dtype)
        _direct_forward_kernel(x[lo:hi], plan.x_ph[0], w, y[lo:hi], acc, *plan.padding, *plan.geometry, plan.wq)

    run_shares(n, share)
    return y


def _direct_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    gy = np.ascontiguousarray(gy)
    w = np.ascontiguousarray(w)
    n, c_in = gy.shape[0], w.shape[1] * groups
    gx = np.empty((n, c_in) + tuple(in_hw), dtype=gy.dtype)

    def share(lo, hi):
        plan = _PhaseRows((1, c_in) + tuple(in_hw), w.shape[2:], stride, padding, dilation, gy.dtype, scratch=False)
        wide = np.empty(gy.shape[2] * plan.wq, dtype=gy.dtype)
        _direct_input_kernel(gy[lo:hi], w, gx[lo:hi], plan.x_ph[0], wide, *plan.padding, *plan.geometry, plan.wq)

    run_shares(n, share)
    return gx


def _direct_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    gy = np.ascontiguousarray(gy)
    weight_shape = (gy.shape[1], x.shape[1] // groups) + tuple(kernel_hw)

    def share(lo, hi):
        plan = _PhaseRows((1,) + x.shape[1:], kernel_hw, stride, padding, dilation, x.dtype, scratch=False)
        gw = np.zeros(weight_shape, dtype=x.dtype)
        wide = np.empty(gy.shape[2] * plan.wq, dtype=x.dtype)
        _direct_weight_kernel(x[lo:hi], plan.x_ph[0], gy[lo:hi], gw, wide, *plan.padding, *plan.geometry, plan.wq)
        return gw

    return sum(run_shares(x.shape[0], share))


def conv2d_forward(x, w, stride, padding, dilation, groups):
    """y = conv2d(x, w): (N, C_in, H, W), (C_out, C_in/groups, kh, kw) -> (N, C_out, H_out, W_out)."""
    if _SHIFTED and _direct_pays(w.shape):
        return _direct_forward(x, w, tuple(stride), tuple(padding), tuple(dilation), groups)
    if _SHIFTED:
        return _wide_forward(x, w, tuple(stride), tuple(padding), tuple(dilation), groups)
    kernel_hw = (w.shape[2], w.shape[3])
    out_hw = conv_output_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    y = np.empty((x.shape[0], w.shape[0], out_hw[0], out_hw[1]), dtype=x.dtype)
    for part in _batch_chunks(x.shape, kernel_hw, out_hw, x.itemsize):
        cols = im2col(x[part], kernel_hw, stride, padding, dilation)
        y[part] = gemm_forward(cols, w, groups, out_hw)
    return y


def conv2d_backward_input(gy, w, in_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = dL/dx given gy (N, C_out, H_out, W_out)."""
    kernel_hw = (w.shape[2], w.shape[3])
    in_hw = tuple(in_hw)
    if _SHIFTED and _direct_pays(w.shape):
        return _direct_backward_input(gy, w, in_hw, tuple(stride), tuple(padding), tuple(dilation), groups)
    # the flipped conv gathers C_out*kh*kw column rows where col2im scatters C_in*kh*kw:
    # it pays when C_out <= C_in (measured: 1.7x faster on 64 -> 64, 3x slower on 1 -> 6)
    if tuple(stride) == (1, 1) and w.shape[0] <= w.shape[1] * groups and _SHIFTED:
        flipped = _stride1_input_padding(w.shape, in_hw, gy.shape[2:], padding, dilation)
        if flipped is not None:
            return _wide_forward(gy, _flipped_weight(w, groups), (1, 1), flipped, tuple(dilation), groups)
    if _SHIFTED:
        return _wide_backward_input(gy, w, in_hw, tuple(stride), tuple(padding), tuple(dilation), groups)
    x_shape = (gy.shape[0], w.shape[1] * groups)
    gx = np.empty((gy.shape[0], x_shape[1], in_hw[0], in_hw[1]), dtype=gy.dtype)
    for part in _batch_chunks(x_shape, kernel_hw, gy.shape[2:], gy.itemsize):
        dcols = gemm_input(gy[part], w, groups)
        gx[part] = col2im(dcols, in_hw, kernel_hw, stride, padding, dilation)
    return gx


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gw (C_out, C_in/groups, kh, kw) = dL/dw given the input x and gy."""
    kernel_hw = tuple(kernel_hw)
    if _SHIFTED and _direct_pays((gy.shape[1], x.shape[1] // groups)):
        return _direct_backward_weight(x, gy, kernel_hw, tuple(stride), tuple(padding), tuple(dilation), groups)
    if _SHIFTED:
        return _wide_backward_weight(x, gy, kernel_hw, tuple(stride), tuple(padding), tuple(dilation), groups)
    weight_shape = (gy.shape[1], x.shape[1] // groups, kernel_hw[0], kernel_hw[1])
    gw = np.zeros(weight_shape, dtype=x.dtype)
    for part in _batch_chunks(x.shape, kernel_hw, gy.shape[2:], x.itemsize):
        cols = im2col(x[part], kernel_hw, stride, padding, dilation)
        gw += gemm_weight(cols, gy[part], groups, weight_shape)
    return gw
