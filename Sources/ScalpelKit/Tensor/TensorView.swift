/// The bytes of one tensor, borrowed from a mapped file (zero copy). The view keeps its file mapped.
/// `@unchecked Sendable`: the bytes are read-only and `owner` (an immutable mapping) keeps them valid.
public struct TensorView: @unchecked Sendable {
    /// The tensor's description.
    public let info: TensorInfo
    /// Exactly `info.byteCount` bytes.
    public let bytes: UnsafeRawBufferPointer
    /// Keeps the mapping alive while the view is in use.
    let owner: AnyObject?

    public init(info: TensorInfo, bytes: UnsafeRawBufferPointer, owner: AnyObject?) {
        self.info = info
        self.bytes = bytes
        self.owner = owner
    }
}
