/// Reported by `Pipeline.write` after each tensor's bytes are in the output, on the writer's background
/// queue, in file order.
public struct ProgressEvent: Sendable {
    /// The tensor just written.
    public var tensor: String
    /// What happened to it (`OutputTensor.action`), its type and shape.
    public var action: String
    public var type: TensorType
    public var shape: [Int]
    /// Tensors written so far (1-based) and in all.
    public var tensorsDone: Int
    public var tensorCount: Int
    /// Tensor bytes written so far and in all.
    public var bytesDone: Int
    public var byteCount: Int
    /// Seconds since the write started.
    public var seconds: Double
}
