"""DataLoader: slices of contiguous tensors, seedable shuffling, the chapter's list-of-tuples form."""

import pytest
import torch

from digitlearn import DataLoader, DataLoaders, DigitlearnError
from digitlearn.data.loaders import InputFormat


def data(n: int = 10):
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    return x, torch.arange(n)


def test_batches_are_slices_in_order_with_the_last_partial_batch_kept():
    x, y = data(10)
    dl = DataLoader(x, y, bs=4)
    batches = list(dl)
    assert len(dl) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), x) and torch.equal(
        torch.cat([b[1] for b in batches]), y
    )
    xb = batches[1][0]
    assert xb._base is x or xb.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()  # a view


def test_drop_last():
    dl = DataLoader(*data(10), bs=4, drop_last=True)
    assert len(dl) == 2 and [len(yb) for _, yb in dl] == [4, 4]
    assert len(DataLoader(*data(8), bs=4, drop_last=True)) == 2


def test_shuffle_is_a_new_permutation_each_epoch_and_repeats_with_the_seed():
    x, y = data(50)
    dl = DataLoader(x, y, bs=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    epochs = [torch.cat([yb for _, yb in dl]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(50))
    assert not torch.equal(epochs[0], epochs[1])
    for xb, yb in dl:
        assert torch.equal(xb[:, 0], yb * 3.0)  # inputs stay with their targets
    again = DataLoader(x, y, bs=16, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.cat([yb for _, yb in again]), epochs[0])
    torch.manual_seed(3)  # without a generator, torch's global seed decides
    a = torch.cat([yb for _, yb in DataLoader(x, y, bs=16, shuffle=True)])
    torch.manual_seed(3)
    assert torch.equal(a, torch.cat([yb for _, yb in DataLoader(x, y, bs=16, shuffle=True)]))


def test_the_chapters_list_of_tuples():
    train_x = torch.rand(600, 784)
    train_y = (torch.rand(600) > 0.5).long().unsqueeze(1)
    dset = list(zip(train_x, train_y, strict=True))
    dl = DataLoader(dset, batch_size=256)
    xb, yb = dl.one_batch()
    assert (xb.shape, yb.shape) == ((256, 784), (256, 1))
    assert len(dl) == 3
    assert all(torch.equal(a, b) for a, b in zip(torch.cat([b for _, b in dl]), train_y, strict=True))


def test_items_of_numbers_and_strings():
    dl = DataLoader(list(zip([1, 2, 3, 4], "abcd", strict=True)), bs=2)
    batches = list(dl)
    assert torch.equal(batches[0][0], torch.tensor([1, 2])) and batches[0][1] == ["a", "b"]
    shuffled = list(DataLoader(list(zip(range(6), "abcdef", strict=True)), bs=3, shuffle=True))
    for nums, letters in shuffled:
        assert letters == ["abcdef"[i] for i in nums.tolist()]


def test_one_tensor_gives_tensor_batches():
    batches = list(DataLoader(torch.arange(5), bs=2))
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in DataLoader([7, 8, 9], bs=2)] == [[7, 8], [9]]


def test_device_moves_the_data_once():
    x, y = data(6)
    dl = DataLoader(x, y, bs=4, device="meta")  # a device that exists on every machine
    assert dl.fields[0].device.type == "meta"
    assert all(xb.device.type == "meta" and yb.device.type == "meta" for xb, yb in dl)
    dls = DataLoaders(DataLoader(x, y, bs=4), DataLoader(x, y, bs=4), classes=["a"])
    dls.to("meta")
    assert dls.device.type == "meta" and dls[1].fields[1].device.type == "meta"
    assert [dl.bs for dl in dls] == [4, 4]


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((), {}, "needs data"),
        (([],), {}, "empty dataset"),
        ((torch.zeros(3), torch.zeros(4)), {}, "differ in length: [3, 4]"),
        ((torch.zeros(3),), {"bs": 0}, "positive integer, not 0"),
        ((torch.zeros(3),), {"bs": 2, "batch_size": 3}, "bs=2 and batch_size=3 disagree"),
        (([1], [2]), {}, "give DataLoader tensors"),
    ],
)
def test_bad_arguments(args, kwargs, message):
    with pytest.raises(DigitlearnError, match=message.replace("[", r"\[").replace("]", r"\]")):
        DataLoader(*args, **kwargs)


def test_a_subset_narrows_every_epoch_and_indices_name_each_batchs_items():
    x, y = data(10)
    dl = DataLoader(x, y, bs=3)
    for _, yb in dl:  # in order: the indices are the batch's positions
        assert torch.equal(dl.indices, yb)
    dl.subset = torch.tensor([7, 2, 5, 9])
    assert len(dl) == 2 and dl.n_items == 4 and "4 of 10 items" in repr(dl)
    assert torch.cat([yb for _, yb in dl]).tolist() == [7, 2, 5, 9]
    dl.shuffle = True
    for _ in range(3):
        seen = []
        for xb, yb in dl:
            assert torch.equal(dl.indices, yb) and torch.equal(xb, x[yb])
            seen += yb.tolist()
        assert sorted(seen) == [2, 5, 7, 9]
    dl.subset = None
    assert len(dl) == 4 and sorted(torch.cat([yb for _, yb in dl]).tolist()) == list(range(10))


def test_show_batch_draws_the_first_training_images_titled_by_class():
    """The images come back from the model's inputs (flat and normalised) as the dataset held them."""
    x = torch.arange(12 * 4, dtype=torch.float32).reshape(12, 4) / 48  # twelve 2x2 "images"
    fmt = {"height": 2, "width": 2, "flat": True, "mean": 0.5, "std": 0.25}
    y = torch.arange(12) % 3
    dls = DataLoaders(DataLoader((x - 0.5) / 0.25, y, bs=8), DataLoader(x, y, bs=8), ["a", "b", "c"], fmt)
    fig = dls.show_batch(n=5)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["a", "b", "c", "a", "b"]
    assert torch.allclose(torch.tensor(panels[4].images[0].get_array()), x[4].reshape(2, 2), atol=1e-6)
    assert len(DataLoaders(DataLoader(x, y, bs=4), DataLoader(x, y)).show_batch().axes) >= 4  # no names


def test_reprs_are_short():
    x, y = torch.zeros(1000, 784), torch.zeros(1000, dtype=torch.long)
    dls = DataLoaders(DataLoader(x, y, bs=64, shuffle=True), DataLoader(x, y, bs=128), ["3", "7"])
    assert repr(dls).splitlines() == [
        "DataLoaders(train: DataLoader(1000 items [(1000, 784) float32, (1000,) int64], bs=64, shuffle=True, "
        "16 batches),",
        "            valid: DataLoader(1000 items [(1000, 784) float32, (1000,) int64], bs=128, "
        "shuffle=False, 8 batches), classes 3, 7)",
    ]


# ---------------------------------------------------------------- found by mutation testing


def test_a_shard_is_this_processs_part_of_every_batch():
    x, y = data(10)  # batches of 4, 4 and 2
    parts = {rank: [yb.tolist() for _, yb in DataLoader(x, y, bs=4).shard(rank, 3)] for rank in range(3)}
    # each batch cut as tensor_split cuts it: the first parts one item longer
    assert parts == {0: [[0, 1], [4, 5], [8]], 1: [[2], [6], [9]], 2: [[3], [7]]}
    even = [[yb.tolist() for _, yb in DataLoader(x, y, bs=4).shard(rank, 3, even=True)] for rank in range(3)]
    assert even == [[[0, 1], [4, 5]], [[2], [6]], [[3], [7]]]  # the last batch has too few for all
    dl = DataLoader(x, y, bs=4).shard(1, 3)
    assert [yb.tolist() for _, yb in dl.shard()] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # shard() undoes it
    for rank in (-1, 3):
        with pytest.raises(DigitlearnError) as e:
            DataLoader(x, y, bs=4).shard(rank, 3)
        assert str(e.value) == f"rank {rank} is not one of the 3 processes"


def test_a_dataset_of_one_item():
    batches = list(DataLoader([(torch.ones(2), 1)], bs=4))
    assert len(batches) == 1 and batches[0][0].shape == (1, 2) and batches[0][1].tolist() == [1]


def test_reprs_name_fields_that_are_not_tensors_and_missing_class_names():
    dl = DataLoader(list(zip([1, 2], "ab", strict=True)), bs=2)
    assert repr(dl) == "DataLoader(2 items [(2,) int64, list], bs=2, shuffle=False, 1 batches)"
    assert repr(DataLoaders(dl, dl)).endswith("no class names)")


def test_input_format_scales_and_normalises_as_it_says():
    pixels = torch.tensor([[[0, 51], [204, 255]]], dtype=torch.uint8)  # one 2x2 image
    as_floats = pixels.float() / 255
    assert torch.equal(InputFormat(2, 2)(pixels), as_floats.reshape(1, 4))
    assert torch.equal(InputFormat(2, 2, flat=False)(as_floats), as_floats.reshape(1, 1, 2, 2))
    for mean, std in [(0.5, 1.0), (1.0, 1.0), (0.0, 2.0), (0.1307, 0.3081)]:
        fmt = InputFormat(2, 2, mean=mean, std=std)
        assert torch.allclose(fmt(pixels), ((as_floats - mean) / std).reshape(1, 4))
        assert torch.allclose(fmt.inverse(fmt(pixels)), as_floats, atol=1e-6)  # and back
    outside = torch.tensor([[-0.5, 0.25, 1.0, 1.5]])
    assert InputFormat(2, 2).inverse(outside).tolist() == [[[0.0, 0.25], [1.0, 1.0]]]  # clamped to [0, 1]


def image_loaders(x: torch.Tensor, classes=None) -> DataLoaders:
    y = torch.arange(len(x)) % 2
    return DataLoaders(DataLoader(x, y, bs=16), DataLoader(x, y, bs=16), classes)


def panels_of(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def test_show_batch_finds_the_images_in_inputs_without_a_format():
    images = torch.rand(12, 3, 3)
    for inputs in (images, images[:, None], images.reshape(12, 9)):  # (N, H, W), (N, 1, H, W), flat
        panels = panels_of(image_loaders(inputs).show_batch(n=4))
        assert [ax.get_title() for ax in panels] == ["0", "1", "0", "1"]  # no class names: the classes
        assert all(
            torch.equal(torch.tensor(ax.images[0].get_array()), images[k]) for k, ax in enumerate(panels)
        )
    assert len(panels_of(image_loaders(images).show_batch())) == 9
    fig = image_loaders(images, ["a", "b"]).show_batch(n=3, ncols=2)  # 2 rows of 2, one panel empty
    assert len(fig.axes) == 4 and [ax.get_title() for ax in panels_of(fig)] == ["a", "b", "a"]
    y = torch.arange(12) % 2
    three = DataLoaders(
        DataLoader(images, y, torch.ones(12), bs=4), DataLoader(images, y, torch.ones(12), bs=4)
    )
    assert len(panels_of(three.show_batch(n=2))) == 2  # fields after the targets are left alone
    for inputs in (torch.rand(12, 8), torch.rand(12, 2, 3, 3), torch.rand(12, 3, 3, 3, 3)):
        with pytest.raises(DigitlearnError) as e:
            image_loaders(inputs).show_batch()
        shape = tuple(inputs.shape[1:])
        assert str(e.value) == f"inputs of shape {shape} are not images: give the DataLoaders an input_format"


def test_batch_size_default_and_bounds_and_exact_refusals():
    x, y = data(100)
    assert DataLoader(x, y).bs == 64 and len(DataLoader(x, y)) == 2
    assert len(DataLoader(x, y, bs=1)) == 100
    refusals = [
        ((), "DataLoader needs data: tensors (x, y) or a sequence of (x, y) items"),
        (([],), "DataLoader got an empty dataset"),
        (([1], [2]), "give DataLoader tensors (x, y), or one sequence of (x, y) items"),
    ]
    for args, message in refusals:
        with pytest.raises(DigitlearnError) as e:
            DataLoader(*args)
        assert str(e.value) == message
    with pytest.raises(ValueError):
        DataLoader([(1, 2), (3,)])  # ragged items: not cut to the shortest


def test_fields_are_held_contiguous_and_nothing_is_indexed_before_the_first_batch():
    x = torch.arange(12.0).reshape(3, 4).T  # a transposed view: not contiguous
    dl = DataLoader(x, torch.arange(4), bs=2)
    assert dl.fields[0].is_contiguous() and torch.equal(dl.fields[0], x) and dl.indices is None


def test_a_shard_of_two_and_an_even_last_batch():
    x, y = data(10)  # batches of 4, 4 and 2
    parts = [[yb.tolist() for _, yb in DataLoader(x, y, bs=4).shard(rank, 2, even=True)] for rank in range(2)]
    assert parts == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]  # a last batch of 2 is enough for 2


def test_moving_keeps_the_subset_and_non_tensor_fields_and_indices_follow_the_data():
    dl = DataLoader(list(zip(range(6), "abcdef", strict=True)), bs=4)
    dl.subset = torch.tensor([5, 1, 3])
    dl.to("meta")  # a device that exists on every machine
    assert dl.subset.device.type == "meta" and dl.fields[1] == list("abcdef")
    x, y = data(6)
    for shuffle in (False, True):
        meta = DataLoader(x, y, bs=4, shuffle=shuffle, device="meta")
        next(iter(meta))
        assert meta.indices.device.type == "meta"  # drawn where the data lives, with no copy
