package dev.vera.demo

import android.graphics.Bitmap
import android.graphics.Canvas
import android.opengl.EGL14
import android.opengl.EGLConfig
import android.opengl.EGLExt
import android.opengl.GLES30
import android.opengl.GLUtils
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * Applies a baked 3D LUT to a photo on the GPU (OpenGL ES 3.0, off-screen), the Android
 * counterpart of Core Image's CIColorCubeWithColorSpace and Pillow's Color3DLUT.
 *
 * The LUT is a GL_RGB16F 3D texture (x = red, y = green, z = blue: exactly the LUT's row order,
 * so it uploads as is) sampled with hardware trilinear filtering. Sample positions are shifted to
 * texel centres, c * (S - 1) / S + 0.5 / S, so grid point i sits at input i / (S - 1) as in
 * vera_mobile/lut.py. The photo goes through in horizontal bands so any size fits the GPU.
 * fp16 texels and 8-bit output rounding can differ from the CPU path by one level.
 */
class GlLut : AutoCloseable {
    private val display = EGL14.eglGetDisplay(EGL14.EGL_DEFAULT_DISPLAY)
    private val context: android.opengl.EGLContext
    private val surface: android.opengl.EGLSurface
    private val program: Int

    init {
        val version = IntArray(2)
        check(EGL14.eglInitialize(display, version, 0, version, 1)) { "EGL initialisation failed" }
        val configs = arrayOfNulls<EGLConfig>(1)
        val count = IntArray(1)
        val attributes = intArrayOf(
            EGL14.EGL_RENDERABLE_TYPE, EGLExt.EGL_OPENGL_ES3_BIT_KHR, EGL14.EGL_SURFACE_TYPE, EGL14.EGL_PBUFFER_BIT,
            EGL14.EGL_RED_SIZE, 8, EGL14.EGL_GREEN_SIZE, 8, EGL14.EGL_BLUE_SIZE, 8, EGL14.EGL_ALPHA_SIZE, 8, EGL14.EGL_NONE
        )
        check(EGL14.eglChooseConfig(display, attributes, 0, configs, 0, 1, count, 0) && count[0] > 0) { "no OpenGL ES 3 config" }
        context = EGL14.eglCreateContext(display, configs[0], EGL14.EGL_NO_CONTEXT,
            intArrayOf(EGL14.EGL_CONTEXT_CLIENT_VERSION, 3, EGL14.EGL_NONE), 0)
        surface = EGL14.eglCreatePbufferSurface(display, configs[0], intArrayOf(EGL14.EGL_WIDTH, 1, EGL14.EGL_HEIGHT, 1, EGL14.EGL_NONE), 0)
        check(EGL14.eglMakeCurrent(display, surface, surface, context)) { "could not make the GL context current" }
        program = link(VERTEX, FRAGMENT)
    }

    /** The photo through the LUT ([size^3 * 3] floats, red fastest); alpha is kept. Call on the thread that made this. */
    fun apply(photo: Bitmap, lut: FloatArray, size: Int): Bitmap {
        val textures = IntArray(3)
        GLES30.glGenTextures(3, textures, 0)
        val (lutTexture, photoTexture, outTexture) = textures.toList()
        GLES30.glBindTexture(GLES30.GL_TEXTURE_3D, lutTexture)
        val data = ByteBuffer.allocateDirect(lut.size * 4).order(ByteOrder.nativeOrder()).asFloatBuffer().put(lut)
        data.position(0)
        GLES30.glTexImage3D(GLES30.GL_TEXTURE_3D, 0, GLES30.GL_RGB16F, size, size, size, 0, GLES30.GL_RGB, GLES30.GL_FLOAT, data)
        for (param in intArrayOf(GLES30.GL_TEXTURE_MIN_FILTER, GLES30.GL_TEXTURE_MAG_FILTER)) {
            GLES30.glTexParameteri(GLES30.GL_TEXTURE_3D, param, GLES30.GL_LINEAR)
        }
        for (wrap in intArrayOf(GLES30.GL_TEXTURE_WRAP_S, GLES30.GL_TEXTURE_WRAP_T, GLES30.GL_TEXTURE_WRAP_R)) {
            GLES30.glTexParameteri(GLES30.GL_TEXTURE_3D, wrap, GLES30.GL_CLAMP_TO_EDGE)
        }
        val framebuffer = IntArray(1).also { GLES30.glGenFramebuffers(1, it, 0) }[0]
        GLES30.glUseProgram(program)
        GLES30.glUniform1i(GLES30.glGetUniformLocation(program, "photo"), 0)
        GLES30.glUniform1i(GLES30.glGetUniformLocation(program, "lut"), 1)
        GLES30.glUniform1f(GLES30.glGetUniformLocation(program, "lutSize"), size.toFloat())

        val out = Bitmap.createBitmap(photo.width, photo.height, Bitmap.Config.ARGB_8888)
        val canvas = Canvas(out)
        val bandRows = maxOf(1, minOf(photo.height, BAND_PIXELS / photo.width))
        var top = 0
        while (top < photo.height) {
            val rows = minOf(bandRows, photo.height - top)
            val band = Bitmap.createBitmap(photo, 0, top, photo.width, rows)
            GLES30.glActiveTexture(GLES30.GL_TEXTURE0)
            GLES30.glBindTexture(GLES30.GL_TEXTURE_2D, photoTexture)
            GLUtils.texImage2D(GLES30.GL_TEXTURE_2D, 0, band, 0)
            nearest(GLES30.GL_TEXTURE_2D)
            GLES30.glActiveTexture(GLES30.GL_TEXTURE1)
            GLES30.glBindTexture(GLES30.GL_TEXTURE_3D, lutTexture)

            GLES30.glBindTexture(GLES30.GL_TEXTURE_2D, outTexture)
            GLES30.glTexImage2D(GLES30.GL_TEXTURE_2D, 0, GLES30.GL_RGBA8, photo.width, rows, 0, GLES30.GL_RGBA, GLES30.GL_UNSIGNED_BYTE, null)
            nearest(GLES30.GL_TEXTURE_2D)
            GLES30.glBindFramebuffer(GLES30.GL_FRAMEBUFFER, framebuffer)
            GLES30.glFramebufferTexture2D(GLES30.GL_FRAMEBUFFER, GLES30.GL_COLOR_ATTACHMENT0, GLES30.GL_TEXTURE_2D, outTexture, 0)
            GLES30.glViewport(0, 0, photo.width, rows)
            GLES30.glDrawArrays(GLES30.GL_TRIANGLES, 0, 3)
            // Row 0 of the band was uploaded first and is drawn at window y = 0, so no flip.
            val pixels = ByteBuffer.allocateDirect(photo.width * rows * 4).order(ByteOrder.nativeOrder())
            GLES30.glReadPixels(0, 0, photo.width, rows, GLES30.GL_RGBA, GLES30.GL_UNSIGNED_BYTE, pixels)
            check(GLES30.glGetError() == GLES30.GL_NO_ERROR) { "the GPU LUT pass failed" }
            val result = Bitmap.createBitmap(photo.width, rows, Bitmap.Config.ARGB_8888)
            result.copyPixelsFromBuffer(pixels.rewind()) // ARGB_8888 memory is R, G, B, A bytes
            canvas.drawBitmap(result, 0f, top.toFloat(), null)
            top += rows
        }
        GLES30.glDeleteFramebuffers(1, intArrayOf(framebuffer), 0)
        GLES30.glDeleteTextures(3, textures, 0)
        return out
    }

    override fun close() {
        GLES30.glDeleteProgram(program)
        EGL14.eglMakeCurrent(display, EGL14.EGL_NO_SURFACE, EGL14.EGL_NO_SURFACE, EGL14.EGL_NO_CONTEXT)
        EGL14.eglDestroySurface(display, surface)
        EGL14.eglDestroyContext(display, context)
        EGL14.eglTerminate(display)
    }

    private fun nearest(target: Int) {
        GLES30.glTexParameteri(target, GLES30.GL_TEXTURE_MIN_FILTER, GLES30.GL_NEAREST)
        GLES30.glTexParameteri(target, GLES30.GL_TEXTURE_MAG_FILTER, GLES30.GL_NEAREST)
    }

    private fun link(vertex: String, fragment: String): Int {
        val program = GLES30.glCreateProgram()
        for ((type, source) in listOf(GLES30.GL_VERTEX_SHADER to vertex, GLES30.GL_FRAGMENT_SHADER to fragment)) {
            val shader = GLES30.glCreateShader(type)
            GLES30.glShaderSource(shader, source)
            GLES30.glCompileShader(shader)
            val ok = IntArray(1).also { GLES30.glGetShaderiv(shader, GLES30.GL_COMPILE_STATUS, it, 0) }[0]
            check(ok != 0) { "shader did not compile: ${GLES30.glGetShaderInfoLog(shader)}" }
            GLES30.glAttachShader(program, shader)
        }
        GLES30.glLinkProgram(program)
        val ok = IntArray(1).also { GLES30.glGetProgramiv(program, GLES30.GL_LINK_STATUS, it, 0) }[0]
        check(ok != 0) { "shader program did not link: ${GLES30.glGetProgramInfoLog(program)}" }
        return program
    }

    private companion object {
        const val BAND_PIXELS = 4 shl 20 // pixels per GPU pass: bounds the GPU and read-back buffers

        // One triangle covering the viewport, from gl_VertexID: no vertex buffers.
        const val VERTEX = """#version 300 es
void main() {
    vec2 corner = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(corner * 2.0 - 1.0, 0.0, 1.0);
}"""

        const val FRAGMENT = """#version 300 es
precision highp float;
precision highp sampler3D;
uniform sampler2D photo;
uniform sampler3D lut;
uniform float lutSize;
out vec4 color;
void main() {
    vec4 pixel = texelFetch(photo, ivec2(gl_FragCoord.xy), 0);
    vec3 position = pixel.rgb * ((lutSize - 1.0) / lutSize) + 0.5 / lutSize;
    color = vec4(texture(lut, position).rgb, pixel.a);
}"""
    }
}
