// Opens a checkpoint, quantizes two of its tensors to Q8_0 (the rest copied), writes a GGUF file, and
// prints the report: the whole pipeline from a library user's side.
//
//   swift run quantize-two-tensors model.safetensors out.gguf
import ScalpelKit

let arguments = CommandLine.arguments
guard arguments.count == 3 else { fatalError("usage: quantize-two-tensors IN OUT.gguf") }
do {
    let input = try CheckpointReader.open(arguments[1])
    var options = Quantize.Options(type: .q8_0)
    let chosen = input.tensors.filter { $0.shape.count == 2 }.prefix(2).map(\.name)
    options.selection.only = chosen                      // only these two are quantized
    let plan = try Quantize.plan(input, for: try Destination(path: arguments[2]), options: options)
    print("will write \(try Pipeline.predict(plan).map(\.bytes).reduce(0, +)) bytes")
    let result = try Pipeline.write(plan, options: .init(force: true))
    print(plan.report(result).text)
} catch {
    print("error: \(error)")
}
