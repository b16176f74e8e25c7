"""Padded sequence batches: latents pool real positions only, so they do not depend on the batch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import latentsight as ls
from latentsight.capture.padding import padding_positions
from latentsight.capture.pooling import LayerPooler, PoolingSettings

VOCABULARY = 12
PAD_ID = 0


def _unpadded_views(sequence: torch.Tensor, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: mean and adaptive-average grid of one sample's ``T x D`` real positions."""
    channels_first = sequence.T.unsqueeze(0)
    grid = F.adaptive_avg_pool1d(channels_first, cells).reshape(-1)
    return sequence.mean(dim=0), grid


@pytest.mark.parametrize("side", ["right", "left"])
def test_masked_pooling_equals_pooling_each_unpadded_sequence(side):
    generator = torch.Generator().manual_seed(0)
    lengths = [9, 5, 2, 1]  # shorter than the 4 grid cells too
    width, features = 9, 6
    x = torch.randn(len(lengths), width, features, generator=generator)
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for row, length in enumerate(lengths):
        if side == "right":
            mask[row, :length] = True
        else:
            mask[row, width - length :] = True
    pooler = LayerPooler("encoder", "sequence", (width, features), PoolingSettings(), masked=True)
    views = pooler(x, mask)
    for row in range(len(lengths)):
        mean, grid = _unpadded_views(x[row][mask[row]], 4)
        torch.testing.assert_close(views["mean"][row], mean)
        torch.testing.assert_close(views["grid"][row], grid)


def test_a_full_mask_pools_as_no_mask():
    x = torch.randn(3, 10, 8)
    settings = PoolingSettings()
    masked = LayerPooler("encoder", "sequence", (10, 8), settings, masked=True)
    plain = LayerPooler("encoder", "sequence", (10, 8), settings)
    full = torch.ones(3, 10, dtype=torch.bool)
    for view, value in masked(x, full).items():
        torch.testing.assert_close(value, plain(x)[view])


class MaskedEncoder(nn.Module):
    """Embedding and a transformer layer that ignores padded positions, as text models do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCABULARY, 16, padding_idx=PAD_ID)
        self.encoder = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        real = attention_mask.bool()
        hidden = self.encoder(self.embed(input_ids), src_key_padding_mask=~real)
        pooled = (hidden * real.unsqueeze(2)).sum(dim=1) / real.sum(dim=1, keepdim=True)
        return self.head(pooled)


class IdsEncoder(MaskedEncoder):
    """The same network taking padded ids alone: the mask is read from the padding id."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(ids, ids != PAD_ID)


def _sequences(n: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, 14, (n,), generator=generator)
    return [torch.randint(1, VOCABULARY, (int(k),), generator=generator) for k in lengths]


def _pad(sequences: list[torch.Tensor]) -> torch.Tensor:
    return nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=PAD_ID)


def _mapping_collate(pairs):
    ids = _pad([ids for ids, _ in pairs])
    return {"input_ids": ids, "attention_mask": (ids != PAD_ID).long()}, torch.tensor(
        [target for _, target in pairs]
    )


def _ids_collate(pairs):
    return _pad([ids for ids, _ in pairs]), torch.tensor([target for _, target in pairs])


def _capture(project: ls.Project, out, batch_size: int):
    return ls.analyze(project, out, batch_size=batch_size, insights=False, progress=False)


@pytest.mark.parametrize("form", ["attention_mask", "padding_mask"])
def test_latents_do_not_depend_on_the_batch_a_sample_is_padded_in(tmp_path, form):
    sequences = _sequences(40)
    data = {"train": [(ids, int(ids[0]) % 2) for ids in sequences]}
    if form == "attention_mask":
        project = ls.Project(
            model=MaskedEncoder(),
            data=data,
            loss=ls.losses.cross_entropy,
            layers=["encoder", "head:input"],
            collate=_mapping_collate,
        )
    else:
        project = ls.Project(
            model=IdsEncoder(),
            data=data,
            loss=ls.losses.cross_entropy,
            layers=["encoder", "head:input"],
            collate=_ids_collate,
            padding_mask=lambda ids: ids != PAD_ID,
        )
    small = _capture(project, tmp_path / "small", batch_size=3)
    large = _capture(project, tmp_path / "large", batch_size=40)
    for view in ("mean", "grid"):
        np.testing.assert_allclose(
            small.latent("encoder", view), large.latent("encoder", view), atol=2e-5
        )
    np.testing.assert_allclose(small.latent("head:input"), large.latent("head:input"), atol=2e-5)
    np.testing.assert_allclose(small.samples["loss"], large.samples["loss"], atol=2e-5)

    model = project.resolve_model().eval()  # capture gave it back in its training mode
    with torch.inference_mode():
        alone = model.encoder(model.embed(sequences[7]).unsqueeze(0))[0]
    np.testing.assert_allclose(small.latent("encoder")[7], alone.mean(dim=0).numpy(), atol=2e-5)


def test_padded_ids_without_a_mask_are_named_by_the_check():
    sequences = _sequences(8)
    project = ls.Project(
        model=IdsEncoder(),
        data={"train": [(ids, 0) for ids in sequences]},
        loss=ls.losses.cross_entropy,
        layers=["encoder"],
        collate=_ids_collate,
    )
    report = ls.check(project)
    assert any("padding_mask=lambda ids: ids != PAD_ID" in w for w in report.warnings)


def test_a_sequence_layer_of_another_length_is_named_by_the_check():
    class Downsampled(MaskedEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.halve = nn.AvgPool1d(2)

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(
                self.embed(input_ids), src_key_padding_mask=~attention_mask.bool()
            )
            return self.head(self.halve(hidden.transpose(1, 2)).mean(dim=2))

    project = ls.Project(
        model=Downsampled(),
        data={"train": [(ids, 0) for ids in _sequences(8)]},
        loss=ls.losses.cross_entropy,
        layers=["encoder", "halve"],
        collate=_mapping_collate,
    )
    report = ls.check(project)
    assert [w for w in report.warnings if "padding included" in w] == [
        next(w for w in report.warnings if w.startswith("layer 'halve'"))
    ]


def test_a_mask_of_the_wrong_shape_is_refused_with_the_fix():
    project = ls.Project(
        model=IdsEncoder(),
        data={"train": [(ids, 0) for ids in _sequences(8)]},
        loss=ls.losses.cross_entropy,
        layers=["encoder"],
        collate=_ids_collate,
        padding_mask=lambda ids: (ids != PAD_ID).sum(dim=1),
    )
    with pytest.raises(ls.ProjectError, match=r"padding_mask gave a tensor of shape \(8,\).*B x T"):
        ls.check(project)


def test_a_padding_mask_that_is_not_a_function_is_refused():
    with pytest.raises(ls.ProjectError, match=r"Project\.padding_mask must be a function"):
        ls.Project(
            model=IdsEncoder(),
            data={"train": [(torch.tensor([1, 2]), 0)]},
            loss=ls.losses.cross_entropy,
            padding_mask=torch.ones(1, 2),
        )


def test_inputs_without_a_mask_have_no_padding():
    assert padding_positions(torch.zeros(2, 5, dtype=torch.long), None) is None
    mask = padding_positions(
        {"input_ids": torch.ones(2, 3), "attention_mask": torch.ones(2, 3)}, None
    )
    assert mask.dtype == torch.bool and mask.shape == (2, 3)


class MeanOfEmbeddings(nn.Module):
    """Embeddings, a per-position layer and a mean over real positions that stays finite (zero)
    for a sequence without any, as a bag-of-words model does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCABULARY, 8, padding_idx=PAD_ID)
        self.positions = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = (ids != PAD_ID).unsqueeze(2).float()
        hidden = self.positions(self.embed(ids))
        return self.head((hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1))


def test_a_sample_without_real_positions_is_quarantined_not_given_zero_latents(tmp_path):
    sequences = _sequences(20)
    empty = {1, 11}
    for index in empty:
        sequences[index] = torch.full((4,), PAD_ID)
    project = ls.Project(
        model=MeanOfEmbeddings(),
        data={"train": [(ids, 0) for ids in sequences]},
        loss=ls.losses.cross_entropy,
        layers=["positions", "head:input"],
        collate=_ids_collate,
        padding_mask=lambda ids: ids != PAD_ID,
    )
    report = ls.check(project)
    assert any(w.startswith("train/1: no real positions") for w in report.warnings)

    run = _capture(project, tmp_path / "run", batch_size=8)
    assert sorted(run.quarantine["id"]) == ["train/1", "train/11"]
    assert all(error.startswith("no real positions") for error in run.quarantine["error"])
    assert sorted(run.samples["index"]) == sorted(set(range(20)) - empty)
    assert np.abs(run.latent("positions")).sum(axis=1).min() > 0


class StackedEncoder(nn.Module):
    """Two layers in an nn.TransformerEncoder, whose eval-mode fast path under a padding mask
    hands its layers nested tensors (one length per sample) unless ``nested`` is False."""

    def __init__(self, nested: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCABULARY, 16, padding_idx=PAD_ID)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested)
        self.head = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        real = ids != PAD_ID
        hidden = self.encoder(self.embed(ids), src_key_padding_mask=~real)
        return self.head((hidden * real.unsqueeze(2)).sum(dim=1) / real.sum(dim=1, keepdim=True))


def _stacked_project(nested: bool, layers: list[str] | None) -> ls.Project:
    return ls.Project(
        model=StackedEncoder(nested).eval(),
        data={"train": [(ids, int(ids[0]) % 2) for ids in _sequences(24)]},
        loss=ls.losses.cross_entropy,
        collate=_ids_collate,
        padding_mask=lambda ids: ids != PAD_ID,
        layers=layers,
    )


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_a_transformer_encoder_with_nested_layers_gets_layers_it_can_record(tmp_path):
    checked = ls.check(_stacked_project(nested=True, layers=None))
    chosen = [ref.name for ref, _ in checked.layers]
    assert chosen and not any(name.startswith("encoder.layers") for name in chosen), chosen
    with pytest.raises(ls.ProjectError, match=r"'encoder.layers.0' gives a nested tensor") as error:
        ls.check(_stacked_project(nested=True, layers=["encoder.layers.0"]))
    assert "enable_nested_tensor=False" in str(error.value)

    project = _stacked_project(nested=False, layers=["encoder.layers.0", "head:input"])
    small = _capture(project, tmp_path / "small", batch_size=3)
    large = _capture(project, tmp_path / "large", batch_size=24)
    np.testing.assert_allclose(
        small.latent("encoder.layers.0"), large.latent("encoder.layers.0"), atol=2e-5
    )
