import ArgumentParser
import Foundation
import ScalpelKit

/// Which tensors a transform applies to: shared by quantize, prune and extract-lora.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only transform tensors matching this glob (repeatable).")
    var only: [String] = []

    @Option(help: "Leave tensors matching this glob out of the selection (repeatable).")
    var skip: [String] = []

    @Flag(help: "Also transform embedding tables.")
    var includeEmbeddings = false

    @Flag(help: "Also transform the output head (lm_head, output.weight).")
    var includeHead = false

    var selection: TensorSelection {
        TensorSelection(includeEmbeddings: includeEmbeddings, includeHead: includeHead, only: only, skip: skip)
    }
}
