import PhotosUI
import SwiftUI
import VeraCore

/// Pick a photo, choose a mode, watch the reasoning stream, compare before/after, save.
@MainActor
final class Model: ObservableObject {
    @Published var status = "Loading the bundle…"
    @Published var engine: Engine?
    @Published var mode = "auto"
    @Published var prompt = ""
    @Published var sliders: [String: Double] = [:]
    @Published var photo: CGImage?
    @Published var before: CGImage?
    @Published var after: CGImage?
    @Published var exact = false
    @Published var busy = false
    @Published var reasoning = ""
    @Published var output: Engine.Output?
    @Published var message = ""

    func load() async {
        guard let directory = Engine.locate() else {
            status = "No bundle: put it in Files › On My iPhone › Vera Retouch › bundle (see ios_demo/README.md)."
            return
        }
        do {
            // Launch argument -resident: keep the planner's vision encoder loaded between photos.
            let engine = try await Engine(directory: directory, resident: ProcessInfo.processInfo.arguments.contains("-resident"))
            self.engine = engine
            if ProcessInfo.processInfo.arguments.contains("-benchmark") {
                status = "Benchmark written to \(try await engine.benchmark().path)"
                return
            }
            let problems = try await engine.selfCheck()
            status = problems.isEmpty ? "Bundle loaded; golden vectors reproduce." : "Self-check FAILED: \(problems.joined(separator: "; "))"
        } catch {
            status = "Could not load the bundle: \(error)"
        }
    }

    func retouch() async {
        guard let engine, let photo else { return }
        busy = true
        reasoning = ""
        defer { busy = false }
        do {
            let spec = await engine.manifest.prompts
            let request = try Request(spec: spec, mode: mode, prompt: mode == "style" ? prompt : nil,
                                      params: mode == "param" ? sliders : nil)
            let pair = before.flatMap { b in after.map { (b, $0) } }
            output = try await engine.retouch(request, photo: photo, reference: pair, exact: exact) { piece in
                Task { @MainActor in self.reasoning += piece }
            }
        } catch {
            message = "Error: \(error)"
        }
    }

    /// Save to the photo library (add-only permission); the input is never touched.
    func save() {
        guard let image = output?.image else { return }
        UIImageWriteToSavedPhotosAlbum(UIImage(cgImage: image), nil, nil, nil)
        message = "Saved to Photos"
    }
}

struct ContentView: View {
    @StateObject private var model = Model()
    @State private var picked: [String: PhotosPickerItem] = [:]
    @State private var split = 0.5

    var body: some View {
        ScrollView {
            VStack(alignment: .leading, spacing: 12) {
                Text("Vera Retouch").font(.title2)
                Text(model.status).font(.caption)
                HStack {
                    picker("Pick a photo", slot: "photo")
                    Button("Sample") { // the SDK's own sample photo, added to the app by project.yml
                        model.photo = Bundle.main.url(forResource: "sample_trier_dark", withExtension: "jpg")
                            .flatMap { try? Data(contentsOf: $0) }.flatMap(Images.upright)
                        model.output = nil
                    }
                }
                Picker("Mode", selection: $model.mode) {
                    ForEach(["auto", "style", "param", "reference"], id: \.self) { Text($0) }
                }.pickerStyle(.segmented)
                modeControls
                Toggle(model.exact ? "Exact rendering (every pixel)" : "LUT rendering (Core Image)", isOn: $model.exact)
                Button("Retouch") { Task { await model.retouch() } }.disabled(model.engine == nil || model.photo == nil || model.busy)
                if model.busy { ProgressView() }
                if !model.reasoning.isEmpty { Text(model.reasoning).font(.callout) }
                if let plan = model.output?.plan {
                    ForEach(plan.sections.keys.sorted(), id: \.self) { name in
                        if let text = plan.sections[name] ?? nil, !text.isEmpty { Text("\(name): \(text)").font(.caption) }
                    }
                    if let forced = model.output?.forced, !forced.isEmpty { Text("forced: \(forced.joined(separator: ", "))").font(.caption) }
                }
                if let photo = model.photo {
                    beforeAfter(photo, model.output?.image)
                }
                if model.output != nil { Button("Save") { model.save() } }
                Text(model.message).font(.caption)
            }.padding()
        }
        .task { await model.load() }
    }

    @ViewBuilder private var modeControls: some View {
        switch model.mode {
        case "style": TextField("Instruction, e.g. I want a warm film look.", text: $model.prompt)
        case "param":
            if let engine = model.engine { SliderGroups(engine: engine, values: $model.sliders) }
        case "reference": HStack { picker("Example: before", slot: "before"); picker("Example: after", slot: "after") }
        default: EmptyView()
        }
    }

    private func picker(_ title: String, slot: String) -> some View {
        PhotosPicker(title, selection: Binding(get: { picked[slot] }, set: { item in
            picked[slot] = item
            Task {
                guard let data = try await item?.loadTransferable(type: Data.self), let image = Images.upright(data) else { return }
                switch slot {
                case "before": model.before = image
                case "after": model.after = image
                default: model.photo = image; model.output = nil
                }
            }
        }), matching: .images)
    }

    /// The result with the original over its left part; the slider moves the split.
    private func beforeAfter(_ photo: CGImage, _ result: CGImage?) -> some View {
        VStack {
            ZStack {
                Image(decorative: result ?? photo, scale: 1).resizable().scaledToFit()
                Image(decorative: photo, scale: 1).resizable().scaledToFit()
                    .mask(GeometryReader { g in Rectangle().frame(width: g.size.width * split).frame(maxWidth: .infinity, alignment: .leading) })
            }
            if result != nil { Slider(value: $split); Text("before ← | → after").font(.caption2) }
        }
    }
}

/// The 38 sliders in the manifest's groups and order, on the ±100 scale.
struct SliderGroups: View {
    let engine: Engine
    @Binding var values: [String: Double]
    @State private var groups: [SliderGroup] = []

    var body: some View {
        VStack(alignment: .leading) {
            ForEach(groups, id: \.name) { group in
                Text(group.name).font(.headline)
                ForEach(group.sliders, id: \.self) { name in
                    Text("\(name) \(Int(values[name] ?? 0))").font(.caption)
                    Slider(value: Binding(get: { values[name] ?? 0 }, set: { values[name] = $0.rounded() }), in: -100 ... 100)
                }
            }
        }.task { groups = await engine.manifest.prompts.sliderGroups }
    }
}
