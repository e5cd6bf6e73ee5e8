package dev.vera.demo

import android.content.ContentValues
import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.ColorSpace
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Environment
import android.provider.MediaStore
import vera.core.Manifest

/**
 * Photo I/O and the model views, following vera_mobile/photo_io.py and views.py with Android's decoders:
 * EXIF orientation applied once at load (ImageDecoder does it), colours converted to sRGB.
 *
 * Android has no Lanczos/bicubic resampler: the planner view uses bilinear filtering, so its
 * pixels differ slightly from Pillow's (the layout, sizes and scaling are the manifest's).
 */
object Photos {
    fun load(context: Context, uri: Uri): Bitmap = decode(ImageDecoder.createSource(context.contentResolver, uri))

    fun loadAsset(context: Context, name: String): Bitmap = decode(ImageDecoder.createSource(context.assets, name))

    private fun decode(source: ImageDecoder.Source): Bitmap = ImageDecoder.decodeBitmap(source) { decoder, _, _ ->
        decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE // pixels readable by the CPU and GL upload
        decoder.setTargetColorSpace(ColorSpace.get(ColorSpace.Named.SRGB))
    }.let { if (it.config == Bitmap.Config.ARGB_8888) it else it.copy(Bitmap.Config.ARGB_8888, false) }

    /**
     * Planner input [3, S, S] in [0, 1]: short side to `preprocessing.planner.short_side` (long side
     * truncated, bounded by `max_long_side`), centred on a black square, resized to the model's image size.
     */
    fun plannerView(photo: Bitmap, manifest: Manifest): FloatArray {
        val (w, h) = manifest.plannerView.resizedSize(photo.width, photo.height)
        val resized = Bitmap.createScaledBitmap(photo, w, h, true)
        val side = maxOf(w, h)
        val square = Bitmap.createBitmap(side, side, Bitmap.Config.ARGB_8888)
        Canvas(square).apply {
            drawColor(Color.BLACK)
            drawBitmap(resized, ((side - w) / 2).toFloat(), ((side - h) / 2).toFloat(), null)
        }
        val size = manifest.imageSize
        return chw(Bitmap.createScaledBitmap(square, size, size, true), bgr = false) { it / 255f }
    }

    /** Reference-encoder input: squashed to `preprocessing.reference.size`, channel order as the manifest says, [-1, 1]. */
    fun referenceView(photo: Bitmap, manifest: Manifest): FloatArray {
        val reference = manifest.preprocessing["reference"] as Map<*, *>
        val size = (reference["size"] as Double).toInt()
        val squashed = Bitmap.createScaledBitmap(photo, size, size, true)
        return chw(squashed, bgr = reference["channel_order"] == "BGR") { it / 255f * 2f - 1f }
    }

    private fun chw(bitmap: Bitmap, bgr: Boolean, scale: (Float) -> Float): FloatArray {
        val n = bitmap.width * bitmap.height
        val argb = IntArray(n).also { bitmap.getPixels(it, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height) }
        val out = FloatArray(3 * n)
        val order = if (bgr) intArrayOf(0, 8, 16) else intArrayOf(16, 8, 0) // bit shifts of the output channels
        for (i in 0 until n) for (c in 0 until 3) out[c * n + i] = scale(((argb[i] shr order[c]) and 0xff).toFloat())
        return out
    }

    fun pixels(bitmap: Bitmap): IntArray =
        IntArray(bitmap.width * bitmap.height).also { bitmap.getPixels(it, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height) }

    fun fromPixels(argb: IntArray, width: Int, height: Int): Bitmap =
        Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)

    /** Save as a JPEG in Pictures/VeraRetouch; the input photo is never touched. */
    fun save(context: Context, bitmap: Bitmap, name: String): Uri {
        val values = ContentValues().apply {
            put(MediaStore.Images.Media.DISPLAY_NAME, "$name.jpg")
            put(MediaStore.Images.Media.MIME_TYPE, "image/jpeg")
            put(MediaStore.Images.Media.RELATIVE_PATH, Environment.DIRECTORY_PICTURES + "/VeraRetouch")
            put(MediaStore.Images.Media.IS_PENDING, 1) // invisible to other apps until complete
        }
        val resolver = context.contentResolver
        val uri = resolver.insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values)
            ?: throw IllegalStateException("could not create a MediaStore entry for $name")
        try {
            resolver.openOutputStream(uri).use { stream ->
                check(stream != null && bitmap.compress(Bitmap.CompressFormat.JPEG, 95, stream)) { "could not write $name" }
            }
            values.clear()
            values.put(MediaStore.Images.Media.IS_PENDING, 0)
            resolver.update(uri, values, null, null)
        } catch (e: Exception) {
            resolver.delete(uri, null, null) // no partial output
            throw e
        }
        return uri
    }
}
