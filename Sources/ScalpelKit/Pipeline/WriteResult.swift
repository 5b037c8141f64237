/// What `Pipeline.write` did: the files, what each computed tensor measured, and how long it took.
public struct WriteResult: Sendable {
    /// The files written, in order (folder outputs: each file inside the folder).
    public var files: [PlannedFile]
    /// What each computed tensor's computation returned, by output tensor name (copied tensors and
    /// computations that measured nothing are absent).
    public var outcomes: [String: TensorOutcome]
    /// Tensors and tensor bytes written.
    public var tensors: Int
    public var tensorBytes: Int
    /// Wall-clock seconds of the write (planning excluded).
    public var seconds: Double

    /// Bytes of all files written.
    public var bytes: Int { files.reduce(0) { $0 + $1.bytes } }
}
