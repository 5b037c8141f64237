/// One change an adapter makes to one base tensor, applied in f32 in adapter order.
enum MergeEdit: Sendable {
    /// `W += weight * scaling * (B @ A)` (transposed as the module says), then DoRA's renormalization when
    /// the module has a magnitude (weight is then 1).
    case product(LoRAModule, adapter: Checkpoint, weight: Double)
    /// `bias += weight * scaling * lora_B.bias`.
    case bias(LoRAModule, adapter: Checkpoint, weight: Double)
    /// `W += weight * (T - W)` with T the adapter's full tensor: T itself at weight 1.
    case replace(source: String, adapter: Checkpoint, weight: Double)
    /// IA3: `W *= 1 + weight * (l - 1)` (l itself at weight 1) by rows, or by columns when `columns`.
    case scale(AdapterDeltaModule, adapter: Checkpoint, weight: Double, columns: Bool)

    /// True when the edit of any range of rows of the target needs only those rows. Only DoRA on a
    /// transposed layout (a norm per column) needs the whole tensor.
    var isRowLocal: Bool {
        if case .product(let m, _, _) = self { return m.magnitudeName == nil || !m.transposed }
        return true
    }

    /// The edit with its small adapter tensors decoded to f32, ready to apply to rows of the target.
    func prepared() throws -> PreparedMergeEdit {
        switch self {
        case .product(let m, let adapter, let weight):
            return PreparedMergeEdit(
                edit: self, a: try FloatConversion.floats(try adapter.view(m.aName)), b: try FloatConversion.floats(try adapter.view(m.bName)),
                vector: try m.magnitudeName.map { try FloatConversion.floats(try adapter.view($0)) } ?? [], scale: Float(weight * m.scaling))
        case .bias(let m, let adapter, let weight):
            return PreparedMergeEdit(edit: self, a: [], b: [], vector: try FloatConversion.floats(try adapter.view(m.biasName!)),
                                     scale: Float(weight * m.scaling))
        case .replace(_, _, let weight):
            return PreparedMergeEdit(edit: self, a: [], b: [], vector: [], scale: Float(weight))
        case .scale(let m, let adapter, let weight, _):
            return PreparedMergeEdit(edit: self, a: [], b: [], vector: AdapterScaleEdit.factors(try m.scaleVector(adapter), weight: weight), scale: 1)
        }
    }
}

/// A `MergeEdit` with its factors, magnitude or bias decoded (replacement tensors are decoded row range by
/// row range as they are applied).
struct PreparedMergeEdit: Sendable {
    let edit: MergeEdit
    let a: [Float]
    let b: [Float]
    /// The DoRA magnitude or the `lora_B` bias.
    let vector: [Float]
    /// `weight * scaling` (products, biases) or the weight (replacements).
    let scale: Float

    /// Applies the edit to rows `rows` of the target tensor, whose f32 values (row-major, `cols` per row;
    /// a 1-D tensor is one value per row) are in `w`. An edit that is not row-local must be given all rows.
    /// Like `quantize`, a merge refuses to create NaN or Inf: an edit that turns finite values non-finite
    /// (NaN factors, an overflowing weight) is an error naming the adapter tensor.
    func apply(rows: Range<Int>, cols: Int, to w: UnsafeMutableBufferPointer<Float>, tensor: String) throws {
        let before = PreparedMergeEdit.nonFiniteCount(w)
        try applyUnchecked(rows: rows, cols: cols, to: w, tensor: tensor)
        if PreparedMergeEdit.nonFiniteCount(w) > before {
            let (adapter, source): (Checkpoint, String) = {
                switch edit {
                case .product(let m, let a, _): return (a, m.aName)
                case .bias(let m, let a, _): return (a, m.biasName ?? m.aName)
                case .replace(let source, let a, _): return (a, source)
                case .scale(let m, let a, _, _):
                    if case .scaleVector(let name, _) = m.rule { return (a, name) }
                    return (a, m.weightName)
                }
            }()
            throw ScalpelError.invalid(file: adapter.path, tensor: source, reason: "merging it into \(tensor) gives NaN or infinite values (non-finite factors, or a weight times scaling of \(scale) out of f32 range)")
        }
    }

    static func nonFiniteCount(_ w: UnsafeMutableBufferPointer<Float>) -> Int {
        NonFinite.count(UnsafeBufferPointer(w))
    }

    private func applyUnchecked(rows: Range<Int>, cols: Int, to w: UnsafeMutableBufferPointer<Float>, tensor: String) throws {
        switch edit {
        case .product(let m, _, _):
            let (pRows, pCols) = (m.productShape[0], m.productShape[1])
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    MergeKernels.addProduct(into: w.baseAddress!, rows: rows, b: bp.baseAddress!, a: ap.baseAddress!,
                                            productRows: pRows, productCols: pCols, rank: m.rank, scale: scale, transposed: m.transposed)
                }
            }
            if m.magnitudeName != nil {
                if m.transposed {
                    MergeKernels.rescaleColumnsToMagnitude(w, magnitude: vector, rows: rows.count, cols: cols)
                } else {
                    MergeKernels.rescaleRowsToMagnitude(w, magnitude: Array(vector[rows]), cols: cols)
                }
            }
        case .bias:
            MergeKernels.addScaled(w, Array(vector[rows]), scale: scale)
        case .replace(let source, let adapter, let weight):
            let view = try adapter.view(source)
            let width = view.info.type.byteCount(elements: cols) ?? 0
            var t = [Float](repeating: 0, count: rows.count * cols)
            try t.withUnsafeMutableBufferPointer {
                try FloatConversion.decode(view.info.type, UnsafeRawBufferPointer(rebasing: view.bytes[(rows.lowerBound * width)..<(rows.upperBound * width)]),
                                           into: $0, tensor: source)
            }
            if weight < 0, !t.elementsEqual(w) {
                throw ScalpelError.invalid(file: adapter.path, tensor: source, reason: "replaces \(tensor) entirely; a negative weight cannot restore the tensor it replaced")
            }
            t.withUnsafeBufferPointer { MergeKernels.interpolate(w, toward: $0, weight: scale) }
        case .scale(_, _, _, let columns):
            AdapterScaleEdit.apply(vector, columns: columns, rows: rows, cols: cols, to: w)
        }
    }
}
