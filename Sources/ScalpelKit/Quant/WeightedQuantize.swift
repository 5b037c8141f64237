/// Quantizing a whole tensor with an importance matrix: each expert's rows (`columns` values each) with
/// that expert's importance row, as llama-quantize hands `ggml_quantize_chunk` the slice
/// `imatrix + expert * n_per_row`.
enum WeightedQuantize {
    /// Quantizes `values` (rows of `columns`) into `dst` and measures the round-trip error.
    /// - Precondition: `importance.count` is a multiple of `columns` (one row per expert).
    static func quantizeMeasuring(_ type: GGMLType, _ values: UnsafeBufferPointer<Float>, columns: Int, importance: [Float],
                                  into dst: UnsafeMutableRawBufferPointer) throws -> QuantError {
        throw ScalpelError.invalid(file: nil, tensor: nil, reason: "quantizing \(type.name) with an importance matrix is not supported yet")
    }
}
