package dev.vera.demo

import android.os.Bundle
import android.util.Log
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Surface

/**
 * The demo's one screen. Started with `--ez benchmark true` (adb), it runs benchmark mode instead:
 * fixed inputs, a result JSON in the shared schema, then it finishes.
 */
class MainActivity : ComponentActivity() {
    private val model: RetouchViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        if (savedInstanceState == null && intent.getBooleanExtra("benchmark", false)) {
            model.benchmark { message ->
                Log.i("VeraBenchmark", message) // adb logcat -s VeraBenchmark
                finish()
            }
        }
        setContent {
            MaterialTheme {
                Surface { RetouchScreen(model) }
            }
        }
    }
}
