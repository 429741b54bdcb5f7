"""An LSTM layer that reads its weights once per call: kpvp's LSTM for M and D_seq.

`keras.layers.LSTM` without cuDNN (any CPU) runs its cell once per time step, and the cell
reads its kernels there: under a mixed policy every read casts the float32 variables to the
compute dtype, so a T-step call casts each kernel T times (and its gradient casts back T
times). kpvp's `LSTM` is `keras.layers.LSTM` (same cell, same variables, names, shapes, gate
order i, f, c, o, same config) whose inner loop casts the kernels once per call, projects
every step's input in one matmul before the recurrence, and leaves only `h @ recurrent_kernel`
and the gates inside the loop. Checkpoints and `.keras` files of either layer load into the
other; the class keeps Keras' name because Keras addresses a layer held in a list (D_seq's)
by its class name in those files.

Configurations the fast loop does not cover (a mask, dropout, `unroll`, `go_backwards`) and a
GPU where cuDNN applies run Keras' own loop unchanged.
"""
import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="kpvp")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with the kernels cast and the inputs projected once per call.

    Same constructor, call signature and outputs as `keras.layers.LSTM`; in float32 its
    outputs equal Keras' up to float rounding (the bias is added before, not after,
    the recurrent term).
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._fast_loop_applies(mask):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        cell = self.cell
        dtype = cell.compute_dtype
        # Read (and, under a mixed policy, cast) each variable once, outside the time loop.
        kernel = ops.cast(cell.kernel, dtype)
        recurrent_kernel = ops.cast(cell.recurrent_kernel, dtype)
        activation, recurrent_activation = cell.activation, cell.recurrent_activation

        # Time-major before the projection: the transpose moves D, not 4 * units, per step.
        x = tf.transpose(ops.cast(sequences, dtype), [1, 0, 2])  # [T, B, D]
        shape = tf.shape(x)
        z_x = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel)  # [T * B, 4 units]
        if cell.use_bias:
            z_x = tf.nn.bias_add(z_x, ops.cast(cell.bias, dtype))
        z_x = tf.reshape(z_x, [shape[0], shape[1], 4 * cell.units])

        def step(carry, z_t):
            h, c = carry
            z = z_t + tf.matmul(h, recurrent_kernel)
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
            c = recurrent_activation(z_f) * c + recurrent_activation(z_i) * activation(z_c)
            h = recurrent_activation(z_o) * activation(c)
            return h, c

        h0, c0 = (ops.cast(state, dtype) for state in initial_state)
        hs, cs = tf.scan(step, z_x, initializer=(h0, c0))  # [T, B, units] each
        last_h, last_c = hs[-1], cs[-1]
        outputs = tf.transpose(hs, [1, 0, 2]) if self.return_sequences else last_h[:, None]
        return last_h, outputs, [last_h, last_c]

    def _fast_loop_applies(self, mask) -> bool:
        cell = self.cell
        if mask is not None or self.unroll or self.go_backwards:
            return False
        if cell.dropout or cell.recurrent_dropout:
            return False
        if self.use_cudnn is True:
            return False  # Keras' loop uses cuDNN or says why it cannot
        return not (self.use_cudnn == "auto" and tf.config.list_logical_devices("GPU"))
