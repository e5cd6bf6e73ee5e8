pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "vera-demo"
// core: plain Kotlin/JVM, no Android dependency (also compiled by Debian's kotlinc in CI).
include(":core", ":app")
