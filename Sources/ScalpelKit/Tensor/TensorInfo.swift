/// A tensor as a file header describes it: no data, only where the data is.
public struct TensorInfo: Sendable, Hashable {
    /// The tensor's name as stored in the file.
    public var name: String
    /// The element or block type.
    public var type: TensorType
    /// Dimensions in row-major (numpy) order, outermost first, for every format (GGUF's ggml order is
    /// reversed on reading).
    public var shape: [Int]
    /// Offset of the first byte within the file's data section.
    public var offset: Int
    /// Bytes of data.
    public var byteCount: Int

    public init(name: String, type: TensorType, shape: [Int], offset: Int = 0, byteCount: Int) {
        self.name = name
        self.type = type
        self.shape = shape
        self.offset = offset
        self.byteCount = byteCount
    }

    /// Number of elements (the product of the shape; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

extension Array where Element == Int {
    /// The product of the dimensions, or nil when it overflows or a dimension is negative.
    func checkedProduct() -> Int? {
        var p = 1
        for d in self {
            if d < 0 { return nil }
            let (r, o) = p.multipliedReportingOverflow(by: d)
            if o { return nil }
            p = r
        }
        return p
    }
}
