// Pixel-path kernels of derain-edge: camera frame -> network tensor -> frame, each in one pass over memory.
//
// The frame contract (common/frames.py) is the reference for every kernel here:
// - in: uint8 BGR (H, W, 3) with pitched rows, or NV12 (Y plane + interleaved UV plane at half resolution);
//   out: RGB (N, 3, Hp, Wp) in [0, 1], divided by 255 in FP32 (then rounded to FP16 for half tensors), padded on the
//   bottom and right to (Hp, Wp): edge replication up to the period (the frame padded to the network's multiple),
//   periodic repetition beyond it (a static engine's larger shape; derain.frames.pad_index);
// - back: cropped to (H, W), clamped to [0, 1], times 255, rounded half to even (rintf), uint8 BGR (or NV12).
// - tiles: weighted sums of uint8 tile outputs, weight 0 within `context` of an edge shared with a neighbour and rising
//   linearly over `blend` pixels after it, divided by the summed weight, rounded half to even.
//
// Every kernel is `extern "C"` (plain names for NVRTC / cuModuleGetFunction / cupy.RawModule) and reads only what
// its arguments say: strides are in bytes for uint8 images and in elements for tensors. One thread per output pixel
// (per 2x2 block for NV12 output).

// No includes: the source compiles as it is with nvcc and with NVRTC (which has no system headers), so no CUDA
// toolkit is needed where the kernels are compiled at first use. Half precision is IEEE binary16 bits converted by
// the PTX instructions cuda_fp16.h uses (cvt.rn.f16.f32, round to nearest even; cvt.f32.f16, exact).
using u8 = unsigned char;

struct f16 {
    unsigned short bits;
};

namespace {

__device__ __forceinline__ int clamp_index(int value, int size) { return value < size ? value : size - 1; }

// derain.frames.pad_index: edge replication up to `period` (the side padded to the network's multiple), then
// periodic repetition of the padded side.
__device__ __forceinline__ int pad_index(int value, int size, int period) {
    return clamp_index(value % period, size);
}

__device__ __forceinline__ float saturate(float value) { return fminf(fmaxf(value, 0.0f), 1.0f); }

__device__ __forceinline__ u8 to_byte(float unit) { return static_cast<u8>(rintf(saturate(unit) * 255.0f)); }

template <typename T> __device__ __forceinline__ T from_float(float value);
template <> __device__ __forceinline__ float from_float<float>(float value) { return value; }
template <> __device__ __forceinline__ f16 from_float<f16>(float value) {
    f16 half;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(half.bits) : "f"(value));
    return half;
}

template <typename T> __device__ __forceinline__ float to_float(T value);
template <> __device__ __forceinline__ float to_float<float>(float value) { return value; }
template <> __device__ __forceinline__ float to_float<f16>(f16 value) {
    float single;
    asm("cvt.f32.f16 %0, %1;" : "=f"(single) : "h"(value.bits));
    return single;
}

// YCbCr <-> RGB coefficients: matrix 601 (Kr 0.299, Kb 0.114) or 709 (Kr 0.2126, Kb 0.0722); full range (0..255)
// or limited range (Y 16..235, C 16..240).
struct YuvSpec {
    float kr, kb, y_offset, y_scale, c_scale;
};

__device__ __forceinline__ YuvSpec yuv_spec(int matrix, int full_range) {
    YuvSpec s;
    s.kr = matrix == 709 ? 0.2126f : 0.299f;
    s.kb = matrix == 709 ? 0.0722f : 0.114f;
    s.y_offset = full_range ? 0.0f : 16.0f;
    s.y_scale = full_range ? 255.0f : 219.0f;
    s.c_scale = full_range ? 255.0f : 224.0f;
    return s;
}

template <typename T>
__device__ __forceinline__ void store_rgb(T* dst, int n, int y, int x, int out_h, int out_w, float r, float g,
                                          float b) {
    const size_t plane = static_cast<size_t>(out_h) * out_w;
    const size_t base = static_cast<size_t>(n) * 3 * plane + static_cast<size_t>(y) * out_w + x;
    dst[base] = from_float<T>(r);
    dst[base + plane] = from_float<T>(g);
    dst[base + 2 * plane] = from_float<T>(b);
}

// 1. uint8 BGR frames -> RGB NCHW in [0, 1], padded as the contract pads (pad_index).
template <typename T>
__device__ void bgr8_to_nchw(const u8* src, int height, int width, long long row_pitch, long long frame_pitch,
                             T* dst, int out_h, int out_w, int period_h, int period_w) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (x >= out_w || y >= out_h) return;
    const u8* pixel =
        src + n * frame_pitch + pad_index(y, height, period_h) * row_pitch + pad_index(x, width, period_w) * 3;
    // divide in FP32, as the contract does (x / 255.0f, not x * (1 / 255.0f), which rounds differently)
    store_rgb<T>(dst, n, y, x, out_h, out_w, pixel[2] / 255.0f, pixel[1] / 255.0f, pixel[0] / 255.0f);
}

// 2. RGB NCHW -> uint8 BGR frames: crop, clamp, x255, round half to even.
template <typename T>
__device__ void nchw_to_bgr8(const T* src, int in_h, int in_w, u8* dst, int height, int width,
                             long long row_pitch, long long frame_pitch) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (x >= width || y >= height) return;
    const size_t plane = static_cast<size_t>(in_h) * in_w;
    const size_t base = static_cast<size_t>(n) * 3 * plane + static_cast<size_t>(y) * in_w + x;
    u8* pixel = dst + n * frame_pitch + y * row_pitch + x * 3;
    pixel[0] = to_byte(to_float<T>(src[base + 2 * plane]));
    pixel[1] = to_byte(to_float<T>(src[base + plane]));
    pixel[2] = to_byte(to_float<T>(src[base]));
}

// 3a. NV12 -> RGB NCHW (chroma nearest, as the decoders' 4:2:0 layout pairs it), padded as the contract pads.
template <typename T>
__device__ void nv12_to_nchw(const u8* luma, long long luma_pitch, const u8* chroma, long long chroma_pitch,
                             int height, int width, long long frame_pitch, int matrix, int full_range, T* dst,
                             int out_h, int out_w, int period_h, int period_w) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (x >= out_w || y >= out_h) return;
    const int sy = pad_index(y, height, period_h), sx = pad_index(x, width, period_w);
    const YuvSpec s = yuv_spec(matrix, full_range);
    const float luminance = (luma[n * frame_pitch + sy * luma_pitch + sx] - s.y_offset) / s.y_scale;
    const u8* uv = chroma + n * frame_pitch + (sy / 2) * chroma_pitch + (sx / 2) * 2;
    const float cb = (uv[0] - 128.0f) / s.c_scale, cr = (uv[1] - 128.0f) / s.c_scale;
    const float r = luminance + 2.0f * (1.0f - s.kr) * cr;
    const float b = luminance + 2.0f * (1.0f - s.kb) * cb;
    const float g = (luminance - s.kr * r - s.kb * b) / (1.0f - s.kr - s.kb);
    store_rgb<T>(dst, n, y, x, out_h, out_w, saturate(r), saturate(g), saturate(b));
}

// 3b. RGB NCHW -> NV12 (even H and W): one thread per 2x2 block, 4 luma samples and their mean chroma.
template <typename T>
__device__ void nchw_to_nv12(const T* src, int in_h, int in_w, u8* luma, long long luma_pitch, u8* chroma,
                             long long chroma_pitch, int height, int width, long long frame_pitch, int matrix,
                             int full_range) {
    const int bx = blockIdx.x * blockDim.x + threadIdx.x;
    const int by = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (bx * 2 >= width || by * 2 >= height) return;
    const YuvSpec s = yuv_spec(matrix, full_range);
    const float kg = 1.0f - s.kr - s.kb;
    const size_t plane = static_cast<size_t>(in_h) * in_w;
    float cb_sum = 0.0f, cr_sum = 0.0f;
    for (int dy = 0; dy < 2; ++dy) {
        for (int dx = 0; dx < 2; ++dx) {
            const int y = by * 2 + dy, x = bx * 2 + dx;
            const size_t base = static_cast<size_t>(n) * 3 * plane + static_cast<size_t>(y) * in_w + x;
            const float r = saturate(to_float<T>(src[base]));
            const float g = saturate(to_float<T>(src[base + plane]));
            const float b = saturate(to_float<T>(src[base + 2 * plane]));
            const float luminance = s.kr * r + kg * g + s.kb * b;
            cb_sum += (b - luminance) / (2.0f * (1.0f - s.kb));
            cr_sum += (r - luminance) / (2.0f * (1.0f - s.kr));
            const float code = rintf(s.y_offset + s.y_scale * luminance);
            luma[n * frame_pitch + y * luma_pitch + x] = static_cast<u8>(fminf(fmaxf(code, 0.0f), 255.0f));
        }
    }
    u8* uv = chroma + n * frame_pitch + by * chroma_pitch + bx * 2;
    uv[0] = static_cast<u8>(fminf(fmaxf(rintf(128.0f + s.c_scale * cb_sum * 0.25f), 0.0f), 255.0f));
    uv[1] = static_cast<u8>(fminf(fmaxf(rintf(128.0f + s.c_scale * cr_sum * 0.25f), 0.0f), 255.0f));
}

// derain.frames.tile_weights: 0 within `context` of an edge shared with a neighbour (start > 0 / start + length <
// size), then rising linearly over `blend` pixels; 1 at the frame's own edges.
__device__ __forceinline__ float tile_weight(int position, int length, int start, int size, int context, int blend) {
    const float step = static_cast<float>(blend + 1);
    float weight = 1.0f;
    if (start > 0)
        weight = fminf(weight, saturate((static_cast<float>(position) - static_cast<float>(context - 1)) / step));
    if (start + length < size)
        weight = fminf(weight, saturate((static_cast<float>(length - context) - static_cast<float>(position)) / step));
    return weight;
}

}  // namespace

extern "C" {

__global__ void bgr8_to_nchw_f32(const u8* src, int height, int width, long long row_pitch,
                                 long long frame_pitch, float* dst, int out_h, int out_w, int period_h,
                                 int period_w) {
    bgr8_to_nchw<float>(src, height, width, row_pitch, frame_pitch, dst, out_h, out_w, period_h, period_w);
}

__global__ void bgr8_to_nchw_f16(const u8* src, int height, int width, long long row_pitch,
                                 long long frame_pitch, f16* dst, int out_h, int out_w, int period_h,
                                 int period_w) {
    bgr8_to_nchw<f16>(src, height, width, row_pitch, frame_pitch, dst, out_h, out_w, period_h, period_w);
}

__global__ void nchw_to_bgr8_f32(const float* src, int in_h, int in_w, u8* dst, int height, int width,
                                 long long row_pitch, long long frame_pitch) {
    nchw_to_bgr8<float>(src, in_h, in_w, dst, height, width, row_pitch, frame_pitch);
}

__global__ void nchw_to_bgr8_f16(const f16* src, int in_h, int in_w, u8* dst, int height, int width,
                                 long long row_pitch, long long frame_pitch) {
    nchw_to_bgr8<f16>(src, in_h, in_w, dst, height, width, row_pitch, frame_pitch);
}

__global__ void nv12_to_nchw_f32(const u8* luma, long long luma_pitch, const u8* chroma,
                                 long long chroma_pitch, int height, int width, long long frame_pitch, int matrix,
                                 int full_range, float* dst, int out_h, int out_w, int period_h, int period_w) {
    nv12_to_nchw<float>(luma, luma_pitch, chroma, chroma_pitch, height, width, frame_pitch, matrix, full_range, dst,
                        out_h, out_w, period_h, period_w);
}

__global__ void nv12_to_nchw_f16(const u8* luma, long long luma_pitch, const u8* chroma,
                                 long long chroma_pitch, int height, int width, long long frame_pitch, int matrix,
                                 int full_range, f16* dst, int out_h, int out_w, int period_h, int period_w) {
    nv12_to_nchw<f16>(luma, luma_pitch, chroma, chroma_pitch, height, width, frame_pitch, matrix, full_range, dst,
                         out_h, out_w, period_h, period_w);
}

__global__ void nchw_to_nv12_f32(const float* src, int in_h, int in_w, u8* luma, long long luma_pitch,
                                 u8* chroma, long long chroma_pitch, int height, int width,
                                 long long frame_pitch, int matrix, int full_range) {
    nchw_to_nv12<float>(src, in_h, in_w, luma, luma_pitch, chroma, chroma_pitch, height, width, frame_pitch, matrix,
                        full_range);
}

__global__ void nchw_to_nv12_f16(const f16* src, int in_h, int in_w, u8* luma, long long luma_pitch,
                                 u8* chroma, long long chroma_pitch, int height, int width,
                                 long long frame_pitch, int matrix, int full_range) {
    nchw_to_nv12<f16>(src, in_h, in_w, luma, luma_pitch, chroma, chroma_pitch, height, width, frame_pitch, matrix,
                         full_range);
}

// 4a. Tile extraction: a (rows x cols) window of a pitched BGR frame at (top, left) into a packed uint8 tile
// (rows, cols, 3), edge-replicated where the window passes the frame's border (the tile grid of the contract).
__global__ void extract_tile(const u8* frame, int height, int width, long long row_pitch, int top, int left,
                             u8* tile, int rows, int cols) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= cols || y >= rows) return;
    const u8* pixel = frame + clamp_index(top + y, height) * row_pitch + clamp_index(left + x, width) * 3;
    u8* out = tile + (static_cast<size_t>(y) * cols + x) * 3;
    out[0] = pixel[0];
    out[1] = pixel[1];
    out[2] = pixel[2];
}

// 4b. Accumulate one restored uint8 tile (rows, cols, 3; only its part inside the frame) with its tile weights
// into float sums (H, W, 3) and weights (H, W). Tiles are launched one after another on a stream,
// so each pixel sums its tiles in the reference's order.
__global__ void blend_tile(const u8* tile, int rows, int cols, int top, int left, int context, int blend,
                           float* total, float* weight, int height, int width) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int valid_rows = min(rows, height - top), valid_cols = min(cols, width - left);
    if (x >= valid_cols || y >= valid_rows) return;
    const float w = tile_weight(y, valid_rows, top, height, context, blend) *
                    tile_weight(x, valid_cols, left, width, context, blend);
    const size_t pixel = static_cast<size_t>(top + y) * width + (left + x);
    const u8* value = tile + (static_cast<size_t>(y) * cols + x) * 3;
    // multiply, then add, each rounded as numpy rounds them (no fused multiply-add: the reference has two roundings)
    for (int c = 0; c < 3; ++c) total[pixel * 3 + c] = __fadd_rn(total[pixel * 3 + c], __fmul_rn(value[c], w));
    weight[pixel] += w;
}

// 4c. The blended frame: round half to even of total / weight, into a pitched uint8 BGR frame.
__global__ void finish_blend(const float* total, const float* weight, u8* frame, int height, int width,
                             long long row_pitch) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) return;
    const size_t pixel = static_cast<size_t>(y) * width + x;
    u8* out = frame + y * row_pitch + x * 3;
    for (int c = 0; c < 3; ++c) {
        const float value = rintf(total[pixel * 3 + c] / weight[pixel]);
        out[c] = static_cast<u8>(fminf(fmaxf(value, 0.0f), 255.0f));
    }
}

}  // extern "C"
