import SwiftUI

@main
struct VeraDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
