"""Motion generator M: an LSTM conditional VAE over keypoint sequences (paper Sec. 2, Fig. 4).

M learns `q(z | k_1:T, k_0, a)` (encoder) and `p(k_1:T | z, k_0, a)` (decoder) on pseudo-labels
`k_0:T` that the stage-1 detector Q produced from real videos; at test time `z ~ N(0, I)` and
the decoder alone turns `(z, k_0, a)` into a future keypoint sequence.

Choices the paper leaves open (the authors' code settles them; `build_motion_generator` builds the
authors' form from the full configs, and the constructor's defaults are kpvp's earlier form so
that `.keras` files saved before these arguments existed reload unchanged):

* Encoder conditioning: the authors' LSTM reads k_1..k_T alone and ONE fully connected layer
  maps `[h_T, k_0, a]` to `[mu, sigma]` (`encoder_condition="head"`, `encoder_fc=0`). Not
  the authors' code: `encoder_condition="every_step"` feeds `[k_t, k_0, a]` at every step
  (the condition reaches every gate directly instead of surviving in the state), and
  `encoder_fc > 0` puts a hidden ReLU layer between the LSTM and the heads.
* Posterior (`posterior`): the authors' FC layer carries tf.contrib's default ReLU and its
  second half is used directly as sigma, so a unit whose pre-activation goes negative has
  sigma = 0, no gradient to recover, and a KL held only by their `log(1e-8 + sigma^2)`.
  "softplus" keeps that one layer with mu linear and `sigma = softplus(s) + 1e-4` (softplus is
  ReLU's smooth form, never flat; the floor is the one their 1e-8 puts under sigma^2; a
  linear mu can take the negative values of the zero-mean prior). "relu" is the authors'
  form as written (mu and sigma both ReLU'd, `log_var = log(1e-8 + sigma^2)`). "log_var"
  (not the authors' code) has two linear heads for mu and log(sigma^2).
  Whatever the form, M returns `log_var = log(sigma^2)`, which the KL and sampling read.
* Decoder inputs: step 1 gets `FC([z, k_0, a])`, later steps get zeros (the authors' code).
  The decoder therefore never sees its own outputs: training and sampling run exactly the
  same computation (no teacher forcing, no exposure bias), and the whole sequence is one LSTM
  call. The paper only says the decoder LSTM is conditioned on `[z, k_0, a]`;
  `condition_every_step=True` feeds `FC([z, k_0, a])` at every step instead (not the authors'
  code). The authors' FC has tf.contrib's default ReLU (`decoder_fc_activation="relu"`).
* Output: `tanh` of a dense layer = absolute keypoint coordinates in [-1, 1] (the authors'
  code). Not in the paper: with `offsets=True` the dense layer (linear, zero-initialised)
  gives each keypoint's displacement from k_0 instead, `k_t = k_0 + d_t`, so an untrained M
  holds the first pose and training only has to learn the motion.
* Without class conditioning (`num_classes=0` or `class_conditional=False`, as for UvA-NEMO
  and MGIF) `a` is dropped everywhere and only `k_0` conditions M; labels are then ignored.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from kpvp.models.lstm import LSTM

ENCODER_CONDITIONS = ("every_step", "head")
POSTERIORS = ("log_var", "softplus", "relu")
# sigma^2 >= 1e-8: the floor the authors' KL, log(1e-8 + sigma^2), puts under sigma^2.
SIGMA_FLOOR = 1e-4


def latent_noise(seed, batch_size, latent_dim) -> tf.Tensor:
    """z ~ N(0, I) as a pure function of `seed`: `[batch_size, latent_dim]` float32.

    A stateless op (seed `[seed, 0]`): `MotionCVAE.sample(seed=...)`,
    `VideoGenerator.generate(seed=...)`, the exported graph and the web page draw the same z for
    the same seed, on every call and in every process.
    """
    seed = tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])
    shape = tf.stack([tf.cast(batch_size, tf.int32), tf.cast(latent_dim, tf.int32)])
    # Philox named explicitly: the automatic choice may differ between devices.
    return tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32, alg="philox")


@keras.saving.register_keras_serializable(package="kpvp")
class MotionCVAE(keras.Model):
    """M: cVAE with LSTM encoder and decoder over keypoint sequences.

    Shapes (K keypoints, T future steps, C classes, D = `latent_dim`):
      call([k_seq [B, T+1, K, 2], labels int [B]]) -> dict(
          keypoints [B, T, K, 2]  (k~_1:T, the reconstruction),
          mu [B, D], log_var [B, D]  (q(z | k_1:T, k_0, a) = N(mu, exp(log_var)), whatever
          `posterior` parameterises sigma with).

    With `training=True` the reconstruction decodes a sample `z = mu + sigma * eps`; otherwise it
    decodes `z = mu` (deterministic, used for evaluation).

    Args:
      num_keypoints: K.
      num_classes: C; 0 means no class input.
      class_conditional: False drops the class input even when `num_classes > 0`.
      units: width of every LSTM layer (1024 in the authors' code).
      num_layers: stacked LSTM layers in the encoder and in the decoder (2).
      latent_dim: D, size of z (64).
      encoder_fc: width of a hidden ReLU layer between the encoder LSTM and the posterior
        heads; 0 for none (the authors' code).
      encoder_condition: "head" feeds `[k_0, a]` to the posterior layer beside the LSTM's last
        state (the authors' code); "every_step" feeds it to the LSTM at every step.
      posterior: how the head gives sigma: "softplus", "relu" or "log_var" (module docstring).
      decoder_fc: width of the FC layer that turns `[z, k_0, a]` into the first decoder input (32).
      decoder_fc_activation: that layer's activation ("relu" in the authors' code; None).
      num_steps: T, the default number of future steps the decoder unrolls (32).
      offsets: decode displacements from k_0 instead of absolute coordinates (not in the
        paper; see the module docstring).
      condition_every_step: feed `FC([z, k_0, a])` to the decoder at every step, not only
        at step 1 (see the module docstring).
      seed: seed of the noise `eps` used in training and by `sample()` without a seed.
    """

    def __init__(self, num_keypoints, num_classes=0, class_conditional=True, units=1024,
                 num_layers=2, latent_dim=64, encoder_fc=128, decoder_fc=32, num_steps=32,
                 offsets=False, condition_every_step=False, encoder_condition="every_step",
                 posterior="log_var", decoder_fc_activation=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_keypoints) < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if int(encoder_fc) < 0:
            raise ValueError(f"encoder_fc must be >= 0, got {encoder_fc}")
        if encoder_condition not in ENCODER_CONDITIONS:
            raise ValueError(f"encoder_condition must be one of {ENCODER_CONDITIONS}, got "
                             f"{encoder_condition!r}")
        if posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, got {posterior!r}")
        self.num_keypoints = int(num_keypoints)
        self.num_classes = int(num_classes)
        self.class_conditional = bool(class_conditional)
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.latent_dim = int(latent_dim)
        self.encoder_fc = int(encoder_fc)
        self.decoder_fc = int(decoder_fc)
        self.num_steps = int(num_steps)
        self.offsets = bool(offsets)
        self.condition_every_step = bool(condition_every_step)
        self.encoder_condition = encoder_condition
        self.posterior = posterior
        self.decoder_fc_activation = decoder_fc_activation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")

        # === Encoder q(z | k_1:T, k_0, a) ===
        # One attribute per LSTM, not a list: Keras 3 keeps list attributes out of the
        # tf.train.Checkpoint object graph, so list-held layers would be silently left out of
        # checkpoints.
        for i in range(self.num_layers):
            setattr(self, f"encoder_lstm_{i}", LSTM(
                self.units, return_sequences=i < self.num_layers - 1, name=f"encoder_lstm_{i}"))
        if self.encoder_fc:
            self.encoder_dense = keras.layers.Dense(self.encoder_fc, activation="relu",
                                                    name="encoder_fc")
        # Heads in float32 under a mixed policy: z, the KL and keypoints need the precision.
        if self.posterior == "log_var":
            self.mu_dense = keras.layers.Dense(self.latent_dim, dtype="float32", name="mu")
            self.log_var_dense = keras.layers.Dense(self.latent_dim, dtype="float32",
                                                    name="log_var")
        else:
            # The authors' ONE layer to [mu, sigma]; its activation is applied in `_posterior`.
            self.posterior_dense = keras.layers.Dense(2 * self.latent_dim, dtype="float32",
                                                      name="posterior")

        # === Decoder p(k_1:T | z, k_0, a) ===
        # None (ours): the LSTM gates supply the nonlinearity, and a ReLU here could switch off
        # condition dimensions for good; the authors' code has a ReLU.
        self.decoder_dense = keras.layers.Dense(self.decoder_fc,
                                                activation=self.decoder_fc_activation,
                                                name="decoder_fc")
        for i in range(self.num_layers):
            setattr(self, f"decoder_lstm_{i}", LSTM(
                self.units, return_sequences=True, name=f"decoder_lstm_{i}"))
        if self.offsets:
            self.output_dense = keras.layers.Dense(2 * self.num_keypoints, dtype="float32",
                                                   kernel_initializer="zeros", name="offsets")
        else:
            self.output_dense = keras.layers.Dense(2 * self.num_keypoints, activation="tanh",
                                                   dtype="float32", name="keypoints")

    @property
    def encoder_lstms(self) -> list:
        return [getattr(self, f"encoder_lstm_{i}") for i in range(self.num_layers)]

    @property
    def decoder_lstms(self) -> list:
        return [getattr(self, f"decoder_lstm_{i}") for i in range(self.num_layers)]

    @property
    def decoder_variables(self) -> list:
        """The variables `decode` uses (its FC, LSTMs and output layer; not the encoder's)."""
        layers = [self.decoder_dense, *self.decoder_lstms, self.output_dense]
        return [v for layer in layers for v in layer.variables]

    @property
    def conditional(self) -> bool:
        """Whether the action class a is an input (needs `num_classes > 0`)."""
        return self.class_conditional and self.num_classes > 0

    @property
    def condition_dim(self) -> int:
        """Size of the flattened condition `[k_0, a]`."""
        return 2 * self.num_keypoints + (self.num_classes if self.conditional else 0)

    def build(self, input_shape=None):
        """Creates every variable; the sizes follow from the constructor, not from the input."""
        cond = self.condition_dim
        every_step = self.encoder_condition == "every_step"
        step_dim = 2 * self.num_keypoints + (cond if every_step else 0)
        for lstm in self.encoder_lstms:
            lstm.build((None, None, step_dim))
            step_dim = self.units
        head_dim = self.units + (0 if every_step else cond)
        if self.encoder_fc:
            self.encoder_dense.build((None, head_dim))
            head_dim = self.encoder_fc
        if self.posterior == "log_var":
            self.mu_dense.build((None, head_dim))
            self.log_var_dense.build((None, head_dim))
        else:
            self.posterior_dense.build((None, head_dim))
        self.decoder_dense.build((None, self.latent_dim + cond))
        step_dim = self.decoder_fc
        for lstm in self.decoder_lstms:
            lstm.build((None, None, step_dim))
            step_dim = self.units
        self.output_dense.build((None, None, self.units))
        self.built = True

    # === Conditioning ===
    def condition(self, k0, labels=None):
        """`[k_0, a]` flattened: k0 `[B, K, 2]`, labels int `[B]` -> `[B, 2K (+ C)]`."""
        k0 = self._check_keypoints(k0, "k0", rank=3)
        parts = [ops.reshape(k0, (-1, 2 * self.num_keypoints))]
        if self.conditional:
            if labels is None:
                raise ValueError(
                    f"labels (int [B] in [0, {self.num_classes})) are required: this MotionCVAE "
                    "is class-conditional")
            labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
            parts.append(ops.one_hot(labels, self.num_classes, dtype=k0.dtype))
        return ops.concatenate(parts, axis=-1)

    # === Encoder ===
    def encode(self, k_future, k0, labels=None, training=None):
        """q(z | k_1:T, k_0, a): k_future `[B, T, K, 2]`, k0 `[B, K, 2]` -> mu, log_var `[B, D]`."""
        k_future = self._check_keypoints(k_future, "k_future", rank=4)
        cond = self.condition(k0, labels)
        steps = ops.shape(k_future)[1]
        x = ops.reshape(k_future, (ops.shape(k_future)[0], steps, 2 * self.num_keypoints))
        if self.encoder_condition == "every_step":
            cond_steps = ops.repeat(ops.expand_dims(cond, 1), steps, axis=1)
            x = ops.concatenate([x, cond_steps], axis=-1)
        for lstm in self.encoder_lstms:
            x = lstm(x, training=training)
        if self.encoder_condition == "head":
            x = ops.concatenate([x, ops.cast(cond, x.dtype)], axis=-1)
        if self.encoder_fc:
            x = self.encoder_dense(x)
        return self._posterior(x)

    def _posterior(self, h):
        """mu, log_var `[B, D]` from the encoder's summary h (`posterior`, module docstring)."""
        if self.posterior == "log_var":
            return self.mu_dense(h), self.log_var_dense(h)
        out = self.posterior_dense(h)
        mu, s = out[:, :self.latent_dim], out[:, self.latent_dim:]
        if self.posterior == "relu":
            # The authors' KL term log(1e-8 + sigma^2); sampling then uses sqrt(sigma^2 + 1e-8).
            return ops.relu(mu), ops.log(1e-8 + ops.square(ops.relu(s)))
        return mu, 2.0 * ops.log(ops.softplus(s) + SIGMA_FLOOR)

    def reparameterize(self, mu, log_var, seed=None):
        """`z = mu + exp(log_var / 2) * eps`, eps ~ N(0, I): `[B, D]` -> `[B, D]`."""
        if seed is None and _replica_id() is not None:
            # Under a multi-replica tf.distribute strategy every replica advances an identical
            # copy of the seed state: fold the replica id in, or replicas draw the same noise.
            state_seed = self.seed_generator.next()
            seed = tf.random.experimental.stateless_fold_in(state_seed, _replica_id())
            eps = tf.random.stateless_normal(ops.shape(mu), seed=seed, dtype=mu.dtype)
        else:
            eps = keras.random.normal(ops.shape(mu), dtype=mu.dtype,
                                      seed=self.seed_generator if seed is None else seed)
        return mu + ops.exp(0.5 * log_var) * eps

    # === Decoder ===
    def decode(self, z, k0, labels=None, num_steps=None, training=None):
        """p(k_1:T | z, k_0, a): z `[B, D]`, k0 `[B, K, 2]` -> keypoints `[B, T, K, 2]` (in
        [-1, 1] unless `offsets`).

        `num_steps` is T (default: the constructor's `num_steps`).
        """
        steps = self.num_steps if num_steps is None else int(num_steps)
        z = ops.convert_to_tensor(z)
        if len(z.shape) != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape [B, {self.latent_dim}], got {tuple(z.shape)}")
        first = self.decoder_dense(ops.concatenate([z, self.condition(k0, labels)], axis=-1))
        # FC([z, k_0, a]) at step 1, zeros after it, or at every step (module docstring).
        x = ops.expand_dims(first, 1)
        if self.condition_every_step:
            x = ops.repeat(x, steps, axis=1)
        else:
            x = ops.pad(x, [[0, 0], [0, steps - 1], [0, 0]])
        for lstm in self.decoder_lstms:
            x = lstm(x, training=training)
        x = ops.reshape(self.output_dense(x), (-1, steps, self.num_keypoints, 2))
        if self.offsets:
            x = x + ops.expand_dims(ops.convert_to_tensor(k0, x.dtype), 1)
        return x

    def sample(self, k0, labels=None, seed=None, z=None, num_steps=None):
        """Test-time generation: z ~ N(0, I) (or the given `z [B, D]`) -> k_1:T `[B, T, K, 2]`.

        k0 `[B, K, 2]`; labels int `[B]` (ignored without class conditioning). An int `seed`
        gives the same z (and samples) on every call; `seed=None` draws from the model's own
        seed generator, which advances.
        """
        k0 = self._check_keypoints(k0, "k0", rank=3)
        if z is None:
            z = self.draw_latent(ops.shape(k0)[0], seed, dtype=k0.dtype)
        return self.decode(z, k0, labels, num_steps=num_steps, training=False)

    def draw_latent(self, batch_size, seed=None, dtype="float32"):
        """The z `sample` draws when given none: N(0, I) `[batch_size, D]`, from `seed` (an
        int: `latent_noise`, the same z on every call) or the model's own advancing seed
        generator."""
        if seed is None:
            return keras.random.normal((batch_size, self.latent_dim), dtype=dtype,
                                       seed=self.seed_generator)
        return ops.cast(latent_noise(seed, batch_size, self.latent_dim), dtype)

    # === Model ===
    def call(self, inputs, training=None):
        """Reconstruction `[k_seq [B, T+1, K, 2], labels [B]] -> dict(keypoints, mu, log_var)`."""
        if isinstance(inputs, dict):
            k_seq, labels = inputs["keypoints"], inputs.get("label")
        elif isinstance(inputs, (list, tuple)):
            if len(inputs) not in (1, 2):
                raise ValueError("inputs must be [k_seq, labels] (or [k_seq] without classes), "
                                 f"got {len(inputs)} items")
            k_seq, labels = inputs[0], (inputs[1] if len(inputs) == 2 else None)
        else:
            k_seq, labels = inputs, None
        k_seq = self._check_keypoints(k_seq, "k_seq", rank=4)
        if k_seq.shape[1] is not None and k_seq.shape[1] < 2:
            raise ValueError(f"k_seq needs k_0 and at least one future frame, got "
                             f"shape {tuple(k_seq.shape)}")
        k0, k_future = k_seq[:, 0], k_seq[:, 1:]
        mu, log_var = self.encode(k_future, k0, labels, training=training)
        z = self.reparameterize(mu, log_var) if training else mu
        steps = k_future.shape[1]
        if steps is None:
            raise ValueError("k_seq needs a static number of frames (T + 1)")
        keypoints = self.decode(z, k0, labels, num_steps=steps, training=training)
        return {"keypoints": keypoints, "mu": mu, "log_var": log_var}

    def _check_keypoints(self, x, name, rank):
        x = ops.convert_to_tensor(x)
        if not keras.backend.is_float_dtype(x.dtype):
            x = ops.cast(x, "float32")
        expected = ("[B, T, K, 2]" if rank == 4 else "[B, K, 2]").replace(
            "K", str(self.num_keypoints))
        if len(x.shape) != rank or tuple(x.shape[-2:]) != (self.num_keypoints, 2):
            raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
        return x

    # === Config ===
    def get_config(self):
        config = super().get_config()
        config.update(num_keypoints=self.num_keypoints, num_classes=self.num_classes,
                      class_conditional=self.class_conditional, units=self.units,
                      num_layers=self.num_layers, latent_dim=self.latent_dim,
                      encoder_fc=self.encoder_fc, decoder_fc=self.decoder_fc,
                      num_steps=self.num_steps, offsets=self.offsets,
                      condition_every_step=self.condition_every_step,
                      encoder_condition=self.encoder_condition, posterior=self.posterior,
                      decoder_fc_activation=self.decoder_fc_activation, seed=self.seed)
        return config


def build_motion_generator(config, seed=None) -> MotionCVAE:
    """M from a kpvp config (`config.stage2`, `num_keypoints`, `num_classes`, ...)."""
    s2 = config.stage2
    return MotionCVAE(
        num_keypoints=config.num_keypoints, num_classes=config.num_classes,
        class_conditional=config.class_conditional, units=s2.lstm_units,
        num_layers=s2.lstm_layers, latent_dim=s2.latent_dim, encoder_fc=s2.encoder_fc,
        decoder_fc=s2.decoder_fc, num_steps=config.data.seq_len - 1,
        offsets=s2.offsets, condition_every_step=s2.condition_every_step,
        encoder_condition=s2.encoder_condition, posterior=s2.posterior,
        decoder_fc_activation=s2.decoder_fc_activation,
        seed=config.seed if seed is None else seed, name="motion_generator")


def _replica_id():
    """The replica id inside a multi-replica tf.distribute step (TensorFlow backend), else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context.replica_id_in_sync_group
