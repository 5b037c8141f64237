/// A dense `Float` matrix stored row-major: element (i, j) is `values[i * cols + j]`.
///
/// A plain value type for the linear-algebra core (`Linalg`, `RandomizedSVD`); it owns its storage.
public struct Matrix: Sendable, Equatable {
    /// Number of rows (m).
    public let rows: Int
    /// Number of columns (n).
    public let cols: Int
    /// The `rows * cols` elements, row after row.
    public internal(set) var values: [Float]

    /// Wraps `values` (row-major). Precondition: `values.count == rows * cols`, both dimensions >= 0.
    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(rows >= 0 && cols >= 0, "negative matrix dimension \(rows) x \(cols)")
        precondition(values.count == rows * cols, "\(values.count) values for a \(rows) x \(cols) matrix")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    /// The `rows x cols` zero matrix.
    public init(rows: Int, cols: Int) {
        self.init(rows: rows, cols: cols, values: [Float](repeating: 0, count: rows * cols))
    }

    /// Element (row, col); both indices are bounds-checked.
    public subscript(row: Int, col: Int) -> Float {
        get {
            precondition(row >= 0 && row < rows && col >= 0 && col < cols, "index (\(row), \(col)) outside \(rows) x \(cols)")
            return values[row * cols + col]
        }
        set {
            precondition(row >= 0 && row < rows && col >= 0 && col < cols, "index (\(row), \(col)) outside \(rows) x \(cols)")
            values[row * cols + col] = newValue
        }
    }

    /// The first `count` rows (`count` in 0...rows).
    public func leadingRows(_ count: Int) -> Matrix {
        precondition(count >= 0 && count <= rows, "\(count) rows of a \(rows) x \(cols) matrix")
        return Matrix(rows: count, cols: cols, values: Array(values[0..<(count * cols)]))
    }

    /// The first `count` columns (`count` in 0...cols).
    public func leadingColumns(_ count: Int) -> Matrix {
        precondition(count >= 0 && count <= cols, "\(count) columns of a \(rows) x \(cols) matrix")
        if count == cols { return self }
        var out = [Float]()
        out.reserveCapacity(rows * count)
        for i in 0..<rows {
            out.append(contentsOf: values[(i * cols)..<(i * cols + count)])
        }
        return Matrix(rows: rows, cols: count, values: out)
    }
}

extension Matrix {
    /// The transpose.
    public var transposed: Matrix {
        var out = Matrix(rows: cols, cols: rows)
        out.values.withUnsafeMutableBufferPointer { o in
            values.withUnsafeBufferPointer { v in
                for i in 0..<rows { for j in 0..<cols { o[j * rows + i] = v[i * cols + j] } }
            }
        }
        return out
    }
}
