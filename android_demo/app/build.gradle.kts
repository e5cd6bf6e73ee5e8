plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
}

android {
    namespace = "dev.vera.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.vera.demo"
        minSdk = 28 // ImageDecoder (EXIF orientation, sRGB conversion); DJL Android needs 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") } // the ABIs the ExecuTorch AAR ships
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    buildFeatures {
        compose = true
    }
    // The sample photo is the SDK's own (vera_mobile/assets), not a copy.
    sourceSets["main"].assets.srcDir("../../vera_mobile/assets")
    packaging {
        // DJL's tokenizer jar carries desktop natives; on Android it loads libdjl_tokenizer.so from
        // tokenizer-native. libc++_shared.so may come from more than one AAR.
        resources.excludes += "native/lib/**"
        jniLibs.pickFirsts += "**/libc++_shared.so"
        jniLibs.useLegacyPackaging = false
    }
}

dependencies {
    implementation(project(":core"))
    // Must match the executorch that exported the bundle (pyproject pins executorch 1.5.1).
    implementation("org.pytorch:executorch-android:1.5.1")
    // HF tokenizers (Rust) through DJL's JNI binding: reads the bundle's tokenizer.json as is.
    implementation("ai.djl.huggingface:tokenizers:0.33.0")
    implementation("ai.djl.android:tokenizer-native:0.33.0")

    implementation(platform("androidx.compose:compose-bom:2024.12.01"))
    implementation("androidx.compose.ui:ui")
    implementation("androidx.compose.material3:material3")
    implementation("androidx.activity:activity-compose:1.9.3")
    implementation("androidx.lifecycle:lifecycle-viewmodel-compose:2.8.7")
    implementation("androidx.lifecycle:lifecycle-runtime-compose:2.8.7")
    implementation("androidx.exifinterface:exifinterface:1.3.7")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
