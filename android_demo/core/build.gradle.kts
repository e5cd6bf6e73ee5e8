// The platform-independent core: manifest, prompts, generation loop, plan, LUT orchestration.
// Kept to Kotlin 1.3 language features so that Debian's kotlinc compiles it in CI (jvm_test.sh).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}
