/// One change an adapter makes to one base tensor, applied in f32 in adapter order.
enum MergeEdit {
    /// `W += weight * scaling * (B @ A)` (transposed as the module says), then DoRA's renormalization when
    /// the module has a magnitude (weight is then 1).
    case product(LoRAModule, adapter: Checkpoint, weight: Double)
    /// `bias += weight * scaling * lora_B.bias`.
    case bias(LoRAModule, adapter: Checkpoint, weight: Double)
    /// `W += weight * (T - W)` with T the adapter's full tensor: T itself at weight 1.
    case replace(source: String, adapter: Checkpoint, weight: Double)

    /// Applies the edit to `w`, the f32 values of `tensor` (row-major, shape already checked).
    func apply(to w: UnsafeMutableBufferPointer<Float>, tensor: String) throws {
        switch self {
        case .product(let m, let adapter, let weight):
            let a = try FloatConversion.floats(try adapter.view(m.aName))
            let b = try FloatConversion.floats(try adapter.view(m.bName))
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    MergeKernels.addProduct(into: w.baseAddress!, b: bp.baseAddress!, a: ap.baseAddress!,
                                            rows: m.productShape[0], cols: m.productShape[1], rank: m.rank,
                                            scale: Float(weight * m.scaling), transposed: m.transposed)
                }
            }
            if let mag = m.magnitudeName {
                let magnitude = try FloatConversion.floats(try adapter.view(mag))
                MergeKernels.rescaleToMagnitude(w, magnitude: magnitude, rows: m.productShape[0], cols: m.productShape[1],
                                                transposed: m.transposed)
            }
        case .bias(let m, let adapter, let weight):
            let bias = try FloatConversion.floats(try adapter.view(m.biasName!))
            MergeKernels.addScaled(w, bias, scale: Float(weight * m.scaling))
        case .replace(let source, let adapter, let weight):
            let t = try FloatConversion.floats(try adapter.view(source))
            defer { adapter.release(source) }
            if weight < 0, !t.elementsEqual(w) {
                throw ScalpelError.invalid(file: adapter.path, tensor: source, reason: "replaces \(tensor) entirely; a negative weight cannot restore the tensor it replaced")
            }
            t.withUnsafeBufferPointer { MergeKernels.interpolate(w, toward: $0, weight: Float(weight)) }
        }
    }
}
