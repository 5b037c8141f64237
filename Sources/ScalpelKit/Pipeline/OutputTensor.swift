/// A tensor to be written: its description, where its bytes come from, and what happens to it.
///
/// Writers lay out every header from these descriptions before any data is produced, then ask each
/// tensor for its bytes in file order, so only one tensor's output is in memory at a time.
public struct OutputTensor: Sendable {
    /// Where the bytes come from.
    public enum Content: Sendable {
        /// Copy these bytes as they are.
        case view(TensorView)
        /// Fill a buffer of exactly `byteCount` bytes, and return what the computation measured (a
        /// round-trip error, pruning counts...), which the writer collects into its `WriteResult`.
        case compute(@Sendable (UnsafeMutableRawBufferPointer) throws -> TensorOutcome)
    }

    public var name: String
    public var type: TensorType
    /// Row-major shape.
    public var shape: [Int]
    public let content: Content
    /// What the command does to this tensor, in a few words ("copy", "cast to f16", "quantize to
    /// q4_0"...), shown by `--dry-run` and `--verbose`.
    public var action: String
    /// Called after the tensor has been written (e.g. to release the input's pages).
    public var onWritten: (@Sendable () -> Void)?

    public init(name: String, type: TensorType, shape: [Int], content: Content, action: String? = nil,
                onWritten: (@Sendable () -> Void)? = nil) {
        self.name = name
        self.type = type
        self.shape = shape
        self.content = content
        if let action {
            self.action = action
        } else if case .view = content {
            self.action = "copy"
        } else {
            self.action = "compute"
        }
        self.onWritten = onWritten
    }

    /// An unchanged tensor copied from an input view.
    public init(copying view: TensorView, name: String? = nil, onWritten: (@Sendable () -> Void)? = nil) {
        self.init(name: name ?? view.info.name, type: view.info.type, shape: view.info.shape, content: .view(view),
                  action: "copy", onWritten: onWritten)
    }

    /// Bytes of data (0 when the shape does not fit the type; writers validate first).
    public var byteCount: Int {
        type.byteCount(elements: shape.checkedProduct() ?? 0) ?? 0
    }

    /// The description with offset 0.
    public var info: TensorInfo {
        TensorInfo(name: name, type: type, shape: shape, offset: 0, byteCount: byteCount)
    }

    /// Checks that the shape fits the type (whole bytes or blocks, no overflow).
    public func validate(file: String) throws {
        guard let n = shape.checkedProduct(), type.byteCount(elements: n) != nil else {
            throw ScalpelError.invalid(file: file, tensor: name, reason: "shape \(shape) does not fit type \(type)")
        }
    }

    /// The same tensor with another action text.
    public func describing(_ action: String) -> OutputTensor {
        var t = self
        t.action = action
        return t
    }
}

extension OutputTensor.Content {
    /// A computation that measures nothing: it fills the buffer.
    public static func filling(_ body: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Void) -> OutputTensor.Content {
        .compute { try body($0); return .none }
    }
}
