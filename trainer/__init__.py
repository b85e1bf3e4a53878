"""Training: tf.data input from TFRecord shards, the training loop (`python -m trainer.task`), export."""
