/// A tensor to be written: its description and where its bytes come from.
///
/// Writers lay out every header from these descriptions before any data is produced, then ask each
/// tensor for its bytes in file order, so only one tensor's output is in memory at a time.
public struct OutputTensor: @unchecked Sendable {
    /// Where the bytes come from.
    public enum Content {
        /// Copy these bytes as they are.
        case view(TensorView)
        /// Fill a buffer of exactly `byteCount` bytes.
        case compute((UnsafeMutableRawBufferPointer) throws -> Void)
    }

    public var name: String
    public var type: TensorType
    /// Row-major shape.
    public var shape: [Int]
    public let content: Content
    /// Called after the tensor has been written (e.g. to release the input's pages).
    public var onWritten: (() -> Void)?

    public init(name: String, type: TensorType, shape: [Int], content: Content, onWritten: (() -> Void)? = nil) {
        self.name = name
        self.type = type
        self.shape = shape
        self.content = content
        self.onWritten = onWritten
    }

    /// An unchanged tensor copied from an input view.
    public init(copying view: TensorView, name: String? = nil, onWritten: (() -> Void)? = nil) {
        self.init(name: name ?? view.info.name, type: view.info.type, shape: view.info.shape, content: .view(view), onWritten: onWritten)
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
}
