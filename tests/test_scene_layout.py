"""Text to compositional scenes, part 1: the scene prompt parser, the layout solver, layout files
and the per-object transforms."""

from __future__ import annotations

import doctest
import json
import math
import re

import pytest
import torch

from nerfgen.generate import checks, layout_solver, scene_prompt
from nerfgen.generate import layout as layout_module
from nerfgen.generate.layout import Layout, LayoutObject, check_layout, read_layout, write_layout
from nerfgen.generate.layout_solver import solve_layout
from nerfgen.generate.scene_prompt import Relation, ScenePlan, object_name, object_words, parse_scene

PARSED = [
    ("a red cube", ["a red cube"], []),
    ("a red cube on a blue sphere", ["a red cube", "a blue sphere"], [(0, "on", 1)]),
    ("a red cube on top of a blue sphere", ["a red cube", "a blue sphere"], [(0, "on", 1)]),
    ("a cube stacked on a ball", ["a cube", "a ball"], [(0, "on", 1)]),
    ("a cube atop a ball", ["a cube", "a ball"], [(0, "on", 1)]),
    ("a cube resting on a ball", ["a cube", "a ball"], [(0, "on", 1)]),
    ("a cube sitting on a ball", ["a cube", "a ball"], [(0, "on", 1)]),
    ("a ball under a cube", ["a ball", "a cube"], [(0, "under", 1)]),
    ("a ball below a cube", ["a ball", "a cube"], [(0, "under", 1)]),
    ("a ball beneath a cube", ["a ball", "a cube"], [(0, "under", 1)]),
    ("a ball underneath a cube", ["a ball", "a cube"], [(0, "under", 1)]),
    ("a cone left of a torus", ["a cone", "a torus"], [(0, "left of", 1)]),
    ("a cone to the left of a torus", ["a cone", "a torus"], [(0, "left of", 1)]),
    ("a cone on the left of a torus", ["a cone", "a torus"], [(0, "left of", 1)]),
    ("a cone right of a torus", ["a cone", "a torus"], [(0, "right of", 1)]),
    ("a cone to the right of a torus", ["a cone", "a torus"], [(0, "right of", 1)]),
    ("a cone on the right of a torus", ["a cone", "a torus"], [(0, "right of", 1)]),
    ("a cone in front of a torus", ["a cone", "a torus"], [(0, "in front of", 1)]),
    ("a cone behind a torus", ["a cone", "a torus"], [(0, "behind", 1)]),
    ("a cone in back of a torus", ["a cone", "a torus"], [(0, "behind", 1)]),
    ("a cone next to a torus", ["a cone", "a torus"], [(0, "next to", 1)]),
    ("a cone beside a torus", ["a cone", "a torus"], [(0, "next to", 1)]),
    ("a cone by a torus", ["a cone", "a torus"], [(0, "next to", 1)]),
    ("a cone near a torus", ["a cone", "a torus"], [(0, "next to", 1)]),
    ("a cube on a ball on a box", ["a cube", "a ball", "a box"], [(0, "on", 1), (1, "on", 2)]),
    ("a green cone to the left of a yellow torus and a purple cylinder",
     ["a green cone", "a yellow torus", "a purple cylinder"], [(0, "left of", 1), (1, "next to", 2)]),
    ("a red cube and a blue sphere on a green cone", ["a red cube", "a blue sphere", "a green cone"],
     [(0, "next to", 1), (1, "on", 2)]),
    ("a red cube, a blue sphere, and a green cone", ["a red cube", "a blue sphere", "a green cone"],
     [(0, "next to", 1), (1, "next to", 2)]),
    ("A Red Cube ON TOP OF An Orange Capsule", ["A Red Cube", "An Orange Capsule"], [(0, "on", 1)]),
    ("an orange capsule beside the pink pyramid", ["an orange capsule", "the pink pyramid"], [(0, "next to", 1)]),
    ("a 3d render of a red cube on a blue sphere, white background", ["a red cube", "a blue sphere"],
     [(0, "on", 1)]),
    ("a photo of a red cube.", ["a red cube"], []),
    ("There is a cube on a ball.", ["a cube", "a ball"], [(0, "on", 1)]),
    ("a red and white striped cube with a blue ball", ["a red and white striped cube", "a blue ball"],
     [(0, "next to", 1)]),
    ("a red cube with white stripes on a ball", ["a red cube with white stripes", "a ball"], [(0, "on", 1)]),
    ("a cube on a ball; a cone left of the ball", ["a cube", "a ball", "a cone"], [(0, "on", 1), (2, "left of", 1)]),
]


@pytest.mark.parametrize("prompt, objects, relations", PARSED)
def test_parse_scene_reads_objects_and_relations(prompt, objects, relations):
    plan = parse_scene(prompt)
    assert plan == ScenePlan(prompt, tuple(objects), tuple(Relation(*r) for r in relations))


REFUSED = [
    ("", "could not find objects in ''"),
    ("on the left", "could not find objects in 'on the left'"),
    ("and", "could not find objects in 'and'"),
    ("a red cube on", "could not read 'a red cube on': 'on' has no object after it (understood: objects "
                      "['a red cube'])"),
    ("on a blue sphere", "could not read 'on a blue sphere': 'on' has no object before it (understood: objects "
                         "['a blue sphere'])"),
    ("a cube on on a ball", "'on' has no object after it (understood: objects ['a cube', 'a ball'], relations "
                            "['a cube on a ball'])"),
    ("a cube to the left of", "'to the left of' has no object after it (understood: objects ['a cube'])"),
    ("a cube on the left", "'on' has no object after it (understood: objects ['a cube'])"),
    ("a cube on the cube", "'a cube' cannot be on itself (understood: objects ['a cube'])"),
]


@pytest.mark.parametrize("prompt, message", REFUSED)
def test_parse_scene_refuses_with_what_it_understood(prompt, message):
    with pytest.raises(ValueError) as info:
        parse_scene(prompt)
    assert message in str(info.value)
    assert str(info.value).startswith(("could not find objects in", f"could not read {prompt!r}"))


def test_object_words_and_names_use_the_prior_vocabulary():
    assert object_words("a small gray ball") == ("grey", "sphere", "small")
    assert object_words("a Huge red Block") == ("red", "cube", "large")
    assert object_words("a teapot") == (None, None, None)
    assert object_name("a red cube.") == "cube" and object_name("An Orange Capsule") == "capsule"
    with pytest.raises(ValueError, match="expected a phrase with a word"):
        object_name("!!")


def test_docstring_examples_hold():
    for module in (scene_prompt, layout_module, layout_solver, checks):
        assert doctest.testmod(module).failed == 0


def bottom(o: LayoutObject) -> float:
    return o.center[2] - o.size


def top(o: LayoutObject) -> float:
    return o.center[2] + o.size


SOLVED = [row[0] for row in PARSED] + [
    "a small cube on a large ball on a box",
    "a cube in front of a ball, a cone left of the cube",
    "a ball behind a cube, a cone behind the cube",
    "a cube on a ball and a cone on the cube",
    "a tiny cone next to a huge box and a big ball under a little cube",
]


@pytest.mark.parametrize("prompt", SOLVED)
def test_solved_layouts_hold_their_relations_stand_on_one_floor_and_fit_the_radius(prompt):
    layout = solve_layout(parse_scene(prompt), radius=1.5)
    assert check_layout(layout) == []
    resting = {r.subject if r.kind == "on" else r.object for r in layout.relations if r.kind in ("on", "under")}
    floor = [bottom(o) for k, o in enumerate(layout.objects) if k not in resting]
    assert max(floor) - min(floor) < 1e-6
    assert max(math.hypot(*o.center) + o.size for o in layout.objects) == pytest.approx(1.5, abs=1e-6)
    for axis in range(3):
        lo = min(o.center[axis] - o.size for o in layout.objects)
        hi = max(o.center[axis] + o.size for o in layout.objects)
        assert lo + hi == pytest.approx(0.0, abs=1e-6)
    assert all(o.rotation == 0.0 and not o.hidden for o in layout.objects)


def test_on_puts_the_bottom_on_the_top_centred():
    cube, sphere = solve_layout(parse_scene("a red cube on a blue sphere")).objects
    assert abs(bottom(cube) - top(sphere)) < 1e-5
    assert cube.center[:2] == pytest.approx(sphere.center[:2], abs=1e-6)
    ball, cube = solve_layout(parse_scene("a ball under a cube")).objects
    assert abs(bottom(cube) - top(ball)) < 1e-5


def test_a_chain_of_three_stacks_in_order():
    cube, ball, box = solve_layout(parse_scene("a small cube on a large ball on a box")).objects
    assert abs(bottom(cube) - top(ball)) < 1e-5 and abs(bottom(ball) - top(box)) < 1e-5
    assert cube.size / box.size == pytest.approx(0.7) and ball.size / box.size == pytest.approx(1.3)
    assert cube.center[:2] == pytest.approx(box.center[:2], abs=1e-6) == ball.center[:2]


@pytest.mark.parametrize("kind, axis, sign", [("left of", 1, -1), ("right of", 1, 1), ("in front of", 0, 1),
                                              ("behind", 0, -1)])
def test_horizontal_relations_order_the_boxes_apart_and_aligned(kind, axis, sign):
    a, b = solve_layout(parse_scene(f"a cube {kind} a large ball")).objects
    d = [a.center[i] - b.center[i] for i in range(3)]
    assert sign * d[axis] >= a.size + b.size - 1e-6  # footprints apart along the axis, at most touching
    assert abs(d[1 - axis]) < 1e-6 and abs(bottom(a) - bottom(b)) < 1e-6


def test_left_of_y_and_z_reads_left_to_right_in_one_row_with_a_gap():
    layout = solve_layout(parse_scene("a green cone to the left of a yellow torus and a purple cylinder"), gap=0.5)
    cone, torus, cylinder = layout.objects
    assert cone.center[1] < torus.center[1] < cylinder.center[1]
    assert cone.center[0] == torus.center[0] == cylinder.center[0]
    scale = cone.size  # every object is default-sized: gap 0.5 is half a size after scaling
    assert torus.center[1] - cone.center[1] == pytest.approx(2.5 * scale)
    assert check_layout(layout) == []


def test_unrelated_stacks_go_side_by_side_along_y():
    plan = ScenePlan("three things", ("a cube", "a ball", "a cone"), ())
    layout = solve_layout(plan)
    ys = [o.center[1] for o in layout.objects]
    assert ys == sorted(ys) and ys[0] < ys[1] < ys[2] and check_layout(layout) == []


@pytest.mark.parametrize("prompt, message", [
    ("a cube left of a ball, the ball left of the cube", "contradictory relations: 'a cube' left of 'a ball', "
                                                         "'a ball' left of 'a cube'"),
    ("a cube left of a ball, the ball left of a cone, the cone left of the cube", "'a cone' left of 'a cube'"),
    ("a cube in front of a ball, the ball in front of the cube", "contradictory relations"),
    ("a cube on a ball, the ball on the cube", "contradictory relations: 'a cube' on 'a ball', 'a ball' on 'a cube'"),
    ("a cube on a ball, the ball under the cube, the cube under the ball", "contradictory relations"),
    ("a cube on a ball, a cone on the ball", "'a ball' cannot hold both 'a cube' and 'a cone'"),
    ("a cube on a ball, the cube on a cone", "'a cube' cannot rest on both 'a ball' and 'a cone'"),
    ("a cube on a ball, the cube left of the ball", "contradictory relations"),
])
def test_contradictions_and_cycles_are_refused(prompt, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        solve_layout(parse_scene(prompt))


def test_solve_layout_refuses_bad_arguments():
    plan = parse_scene("a cube")
    with pytest.raises(ValueError, match="radius must be a positive number"):
        solve_layout(plan, radius=0.0)
    with pytest.raises(ValueError, match="gap must be >= 0"):
        solve_layout(plan, gap=-1.0)
    with pytest.raises(ValueError, match=r"relations\[0\].object must be an object index in \[0, 1\), got 3"):
        solve_layout(ScenePlan("x", ("a cube",), (Relation(0, "on", 3),)))


def test_check_layout_catches_overlap_and_a_broken_on():
    layout = solve_layout(parse_scene("a red cube on a blue sphere, a cone left of the sphere"))
    cube, sphere, cone = layout.objects
    lifted = layout.edited(0, center=(cube.center[0], cube.center[1], cube.center[2] + 0.1))
    assert check_layout(lifted) == ["'cube' on 'sphere' does not hold"]
    crowded = layout.edited(2, center=sphere.center)
    problems = check_layout(crowded)
    assert "'cone' left of 'sphere' does not hold" in problems
    assert any(p.startswith("'sphere' and 'cone' overlap by") for p in problems)
    turned = layout.edited(2, rotation=45.0, center=(cone.center[0], sphere.center[1] - 2 * sphere.size, cone.center[2]))
    assert any("overlap" in p for p in check_layout(turned))  # the turned cube's corner reaches the sphere's box


def example_layout() -> Layout:
    layout = solve_layout(parse_scene("a red cube on a blue cube and a small green cube"))
    return layout.edited(1, rotation=30.0).edited(2, hidden=True, size=0.25)


def test_layout_files_round_trip(tmp_path):
    layout = example_layout()
    assert [o.name for o in layout.objects] == ["cube", "cube-2", "cube-3"]
    write_layout(tmp_path / "layout.json", layout)
    assert read_layout(tmp_path / "layout.json") == layout
    assert json.loads((tmp_path / "layout.json").read_text())["relations"][0] == {
        "subject": 0, "relation": "on", "object": 1}


def test_layout_defaults_names_prompt_rotation_and_hidden():
    layout = Layout.from_dict({"objects": [{"prompt": "a red cube", "center": [0, 0, 0], "size": 1},
                                           {"prompt": "a cube", "center": [0, 3, 0], "size": 1, "name": "cube"}]})
    assert layout.prompt == "a red cube and a cube" and layout.relations == []
    assert [(o.name, o.rotation, o.hidden) for o in layout.objects] == [("cube-2", 0.0, False), ("cube", 0.0, False)]


def valid_doc() -> dict:
    return example_layout().to_dict()


def broken(path: str, value) -> dict:
    doc = valid_doc()
    *keys, last = path
    target = doc
    for key in keys:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize("doc, message", [
    (broken(("objects", 1, "size"), -0.5), "objects[1].size must be a positive number, got -0.5"),
    (broken(("objects", 0, "center"), [0, float("nan"), 0]), "objects[0].center must be a finite number, got nan"),
    (broken(("objects", 0, "center"), [0, 1]), "objects[0].center must be 3 numbers [x, y, z], got [0, 1]"),
    (broken(("objects", 2, "size"), KeyError), "objects[2].size is missing"),
    (broken(("objects", 0, "hidden"), "no"), "objects[0].hidden must be true or false, got 'no'"),
    (broken(("objects", 1, "name"), "cube"), "objects[1].name 'cube' is already the name of objects[0]"),
    (broken(("relations", 0, "relation"), "inside"), "relations[0].relation must be one of"),
    (broken(("relations", 0, "object"), 7), "relations[0].object must be an object index in [0, 3), got 7"),
    (broken(("relations", 0, "object"), 0), "relations[0] relates object 0 to itself"),
    (broken(("objects",), []), "expected a JSON object whose 'objects' lists at least one object"),
    (broken(("version",), 2), "version must be 1, got 2"),
])
def test_bad_layout_files_are_refused_naming_the_file_and_key(tmp_path, doc, message):
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as info:
        read_layout(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_missing_and_malformed_layout_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        read_layout(tmp_path / "nowhere.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: malformed JSON"):
        read_layout(tmp_path / "bad.json")


def test_edited_copies_and_checks():
    layout = example_layout()
    moved = layout.edited(0, center=(1.0, 2.0, 3.0))
    assert moved.objects[0].center == (1.0, 2.0, 3.0) and layout.objects[0].center != (1.0, 2.0, 3.0)
    assert moved.objects[1] == layout.objects[1] and moved.objects[1] is not layout.objects[1]
    with pytest.raises(IndexError, match=r"index must be in \[0, 3\), got 3"):
        layout.edited(3, size=1.0)
    with pytest.raises(ValueError, match=r"objects\[0\].size must be a positive number, got 0"):
        layout.edited(0, size=0)


def test_world_to_object_maps_each_box_onto_the_canonical_cube():
    layout = example_layout().edited(0, rotation=-75.0)
    w2o, o2w = layout.world_to_object(), layout.object_to_world()
    assert w2o.shape == (3, 3, 4) and o2w.shape == (3, 4, 4) and w2o.dtype == o2w.dtype == torch.float32
    for k, o in enumerate(layout.objects):
        t = math.radians(o.rotation)
        center = torch.tensor(o.center)
        tip = center + o.size * torch.tensor([math.cos(t), math.sin(t), 0.0])
        local = w2o[k, :, :3] @ torch.stack([center, tip], dim=1) + w2o[k, :, 3:]
        assert torch.allclose(local.T, torch.tensor([[0.0, 0, 0], [1, 0, 0]]), atol=1e-5)
        forward = torch.cat([w2o[k], torch.tensor([[0.0, 0, 0, 1]])])
        assert torch.allclose(o2w[k] @ forward, torch.eye(4), atol=1e-5)
    assert layout.present().tolist() == [True, True, False]
    assert torch.allclose(layout.sizes(), torch.tensor([o.size for o in layout.objects]))


def test_bounding_radius_holds_every_corner():
    layout = example_layout()
    corners = torch.tensor([[x, y, z, 1.0] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    world = torch.einsum("kij,nj->kni", layout.object_to_world(), corners)[..., :3]
    assert float(world.norm(dim=-1).max()) <= layout.bounding_radius() + 1e-5
