#!/usr/bin/env python3
"""Generates the demo hospital map (maps/demo-hospital/*.geojson) deterministically.

Two buildings of four floors joined by a skybridge on floor 2 and a covered walkway on floor 1:
  A  门诊楼 Outpatient Building       x 0..80 m   registration, cashier, pharmacy, the clinics
  B  医技楼 Medical Technology Bldg.  x 110..170 m imaging, lab, ultrasound, ECG
Each floor: an east-west corridor (y 8..12 m) with rooms on both sides (8 m wide), a lift lobby,
two stairwells, toilets and drinking water. Local metres are projected to WGS84 around
(121.45 E, 31.20 N). The output is plain GeoJSON per IMDF feature type plus navigation.geojson;
edit the files directly (QGIS, geojson.io) or change this script and run it again.

    python3 maps/demo-hospital/generate.py
"""
import json, math, os

OUT = os.path.dirname(os.path.abspath(__file__))
LON0, LAT0 = 121.45, 31.20
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))


def ll(x, y):
    return [round(LON0 + x / M_PER_DEG_LON, 8), round(LAT0 + y / M_PER_DEG_LAT, 8)]


def rect(x0, y0, x1, y1):
    return {"type": "Polygon", "coordinates": [[ll(x0, y0), ll(x1, y0), ll(x1, y1), ll(x0, y1), ll(x0, y0)]]}


def point(x, y):
    return {"type": "Point", "coordinates": ll(x, y)}


def line(*pts):
    return {"type": "LineString", "coordinates": [ll(x, y) for x, y in pts]}


def label(zh, en):
    return {"zh": zh, "en": en}


def feature(fid, ftype, geometry, **props):
    return {"type": "Feature", "id": fid, "feature_type": ftype, "geometry": geometry, "properties": props}


BUILDINGS = {
    "A": dict(x0=0, x1=80, name=label("门诊楼", "Outpatient Building"), lift_x=40, stairs=(4, 76)),
    "B": dict(x0=110, x1=170, name=label("医技楼", "Medical Technology Building"), lift_x=142, stairs=(114, 162)),
}
FLOORS = 4
ROOM_W = 8  # metres along the corridor

# (building, floor) -> rooms, north side then south side, as slot lists. A slot is
# (x_center, side, occupant_id, zh, en, kind, room_id or None, department or None, category).
# kind: "occupant" for departments/rooms, "amenity" for toilets etc.
LAYOUT = {
    ("A", 1): [
        (12, "S", "reg", "挂号处", "Registration", "occupant", None, None, "registration"),
        (20, "S", "cashier-a", "收费处", "Cashier", "occupant", None, None, "cashier"),
        (28, "S", "info-a", "咨询台", "Information Desk", "amenity", None, None, "information"),
        (52, "S", "pharmacy", "药房", "Pharmacy", "occupant", None, "pharmacy", "pharmacy"),
        (60, "S", "ph-1", "药房1号窗口", "Pharmacy Window 1", "occupant", "ph-1", "pharmacy", "pharmacy"),
        (68, "S", "ph-2", "药房2号窗口", "Pharmacy Window 2", "occupant", "ph-2", "pharmacy", "pharmacy"),
        (12, "N", "internal-medicine", "内科", "Internal Medicine", "occupant", None, "internal-medicine", "clinic"),
        (20, "N", "c-101", "101 诊室", "Room 101", "occupant", "c-101", "internal-medicine", "clinic"),
        (28, "N", "c-102", "102 诊室", "Room 102", "occupant", "c-102", "internal-medicine", "clinic"),
        (36, "N", "c-103", "103 诊室", "Room 103", "occupant", "c-103", "internal-medicine", "clinic"),
        (52, "N", "c-104", "104 诊室", "Room 104", "occupant", "c-104", "surgery", "clinic"),
        (60, "N", "c-105", "105 诊室", "Room 105", "occupant", "c-105", "surgery", "clinic"),
        (68, "N", "c-106", "106 诊室", "Room 106", "occupant", "c-106", "pediatrics", "clinic"),
        (76, "N", "c-107", "107 诊室", "Room 107", "occupant", "c-107", "pediatrics", "clinic"),
    ],
    ("A", 2): [
        (12, "N", "gynecology", "妇科", "Gynecology", "occupant", None, "gynecology", "clinic"),
        (20, "N", "c-201", "201 诊室", "Room 201", "occupant", "c-201", "gynecology", "clinic"),
        (28, "N", "c-202", "202 诊室", "Room 202", "occupant", "c-202", "gynecology", "clinic"),
        (52, "N", "c-203", "203 诊室 眼科", "Room 203 Ophthalmology", "occupant", "c-203", "ophthalmology", "clinic"),
        (60, "N", "c-204", "204 诊室 耳鼻喉科", "Room 204 ENT", "occupant", "c-204", "ent", "clinic"),
        (68, "N", "c-205", "205 诊室 皮肤科", "Room 205 Dermatology", "occupant", "c-205", "dermatology", "clinic"),
        (20, "S", "surgery", "外科", "Surgery", "occupant", None, "surgery", "clinic"),
        (28, "S", "pediatrics", "儿科", "Pediatrics", "occupant", None, "pediatrics", "clinic"),
        (52, "S", "ophthalmology", "眼科", "Ophthalmology", "occupant", None, "ophthalmology", "clinic"),
        (60, "S", "ent", "耳鼻喉科", "ENT", "occupant", None, "ent", "clinic"),
        (68, "S", "dermatology", "皮肤科", "Dermatology", "occupant", None, "dermatology", "clinic"),
    ],
    ("A", 3): [
        (12, "N", "cardiology", "心内科", "Cardiology", "occupant", None, "cardiology", "clinic"),
        (20, "N", "c-301", "301 诊室", "Room 301", "occupant", "c-301", "cardiology", "clinic"),
        (28, "N", "c-302", "302 诊室", "Room 302", "occupant", "c-302", "cardiology", "clinic"),
        (36, "N", "c-303", "303 诊室 消化内科", "Room 303 Gastroenterology", "occupant", "c-303", "gastroenterology", "clinic"),
        (52, "N", "c-304", "304 诊室", "Room 304", "occupant", "c-304", "orthopedics", "clinic"),
        (60, "N", "c-305", "305 诊室", "Room 305", "occupant", "c-305", "orthopedics", "clinic"),
        (68, "N", "c-306", "306 诊室 神经内科", "Room 306 Neurology", "occupant", "c-306", "neurology", "clinic"),
        (76, "N", "c-307", "307 诊室 呼吸内科", "Room 307 Respiratory", "occupant", "c-307", "respiratory", "clinic"),
        (20, "S", "gastroenterology", "消化内科", "Gastroenterology", "occupant", None, "gastroenterology", "clinic"),
        (28, "S", "orthopedics", "骨科", "Orthopedics", "occupant", None, "orthopedics", "clinic"),
        (52, "S", "neurology", "神经内科", "Neurology", "occupant", None, "neurology", "clinic"),
        (60, "S", "respiratory", "呼吸内科", "Respiratory Medicine", "occupant", None, "respiratory", "clinic"),
    ],
    ("A", 4): [
        (20, "N", "infusion", "输液室", "Infusion Room", "occupant", None, None, "clinic"),
        (52, "N", "endoscopy", "内镜中心", "Endoscopy Center", "occupant", None, None, "clinic"),
        (20, "S", "health-check", "体检中心", "Health Check Center", "occupant", None, None, "clinic"),
    ],
    ("B", 1): [
        (122, "N", "imaging", "放射科", "Radiology", "occupant", None, "imaging", "imaging"),
        (130, "N", "xr-1", "X 光室", "X-ray Room", "occupant", "xr-1", "imaging", "imaging"),
        (154, "N", "ct-1", "CT 室", "CT Room", "occupant", "ct-1", "imaging", "imaging"),
        (162, "N", "mri", "磁共振室", "MRI Room", "occupant", None, "imaging", "imaging"),
        (130, "S", "cashier-b", "收费处（医技楼）", "Cashier (Medical Technology)", "occupant", None, None, "cashier"),
    ],
    ("B", 2): [
        (122, "N", "lab", "检验科", "Laboratory", "occupant", None, "lab", "laboratory"),
        (130, "N", "lab-1", "检验科1号窗口", "Laboratory Window 1", "occupant", "lab-1", "lab", "laboratory"),
        (154, "N", "lab-2", "检验科2号窗口", "Laboratory Window 2", "occupant", "lab-2", "lab", "laboratory"),
        (162, "N", "lab-3", "检验科3号窗口", "Laboratory Window 3", "occupant", "lab-3", "lab", "laboratory"),
        (130, "S", "blood-draw", "采血处", "Blood Draw", "occupant", None, "lab", "laboratory"),
    ],
    ("B", 3): [
        (122, "N", "ultrasound", "超声科", "Ultrasound", "occupant", None, "ultrasound", "imaging"),
        (130, "N", "us-1", "超声1室", "Ultrasound Room 1", "occupant", "us-1", "ultrasound", "imaging"),
        (154, "N", "us-2", "超声2室", "Ultrasound Room 2", "occupant", "us-2", "ultrasound", "imaging"),
        (130, "S", "ecg", "心电图室", "ECG", "occupant", None, "ecg", "clinic"),
        (162, "S", "ecg-1", "心电图1室", "ECG Room 1", "occupant", "ecg-1", "ecg", "clinic"),
    ],
    ("B", 4): [
        (130, "N", "pathology", "病理科", "Pathology", "occupant", None, None, "laboratory"),
        (154, "N", "nuclear-medicine", "核医学科", "Nuclear Medicine", "occupant", None, None, "imaging"),
    ],
}


def main():
    venue, buildings, levels, units, openings, amenities, occupants, anchors, kiosks, nav = ([] for _ in range(10))
    venue.append(feature("demo-hospital", "venue", rect(-10, -20, 180, 40),
                         name=label("clinicflow 示范医院", "clinicflow Demo Hospital"), category="healthcare",
                         address="上海市 示范路 1 号"))
    nodes = {}

    def node(nid, b, f, x, y, kind, name=None):
        nodes[nid] = (b, f, x, y)
        props = {"level_id": f"{b}-L{f}", "kind": kind}
        if name:
            props["name"] = name
        nav.append(feature(nid, "nav_node", point(x, y), **props))
        return nid

    def edge(a, b, kind, **extra):
        (_, _, xa, ya), (_, _, xb, yb) = nodes[a], nodes[b]
        nav.append(feature(f"e-{a}--{b}", "nav_edge", line((xa, ya), (xb, yb)), **{"from": a, "to": b, "kind": kind, **extra}))

    for b, spec in BUILDINGS.items():
        buildings.append(feature(b, "building", rect(spec["x0"], 0, spec["x1"], 20), name=spec["name"], category="medical"))
        corridor_xs = list(range(spec["x0"] + 4, spec["x1"], ROOM_W))
        for f in range(1, FLOORS + 1):
            lid = f"{b}-L{f}"
            levels.append(feature(lid, "level", rect(spec["x0"], 0, spec["x1"], 20), ordinal=f - 1,
                                  name=label(f"{spec['name']['zh']} {f} 楼", f"{spec['name']['en']}, floor {f}"),
                                  short_name=label(f"{f}F", f"{f}F"), building_ids=[b], category="unspecified"))
            units.append(feature(f"{lid}-corridor", "unit", rect(spec["x0"], 8, spec["x1"], 12), level_id=lid,
                                 category="walkway", name=label("走廊", "Corridor")))
            # The corridor: one node every 8 m.
            prev = None
            for x in corridor_xs:
                n = node(f"{lid}-c{x}", b, f, x, 10, "corridor")
                if prev:
                    edge(prev, n, "corridor")
                prev = n
            # Lift lobby and stairwells: nodes on the corridor line, linked vertically below.
            node(f"{lid}-lift", b, f, spec["lift_x"], 13, "elevator", label("电梯厅", "lifts"))
            edge(f"{lid}-c{spec['lift_x'] - (spec['lift_x'] - corridor_xs[0]) % ROOM_W}", f"{lid}-lift", "corridor")
            for i, sx in enumerate(spec["stairs"]):
                node(f"{lid}-stairs{i + 1}", b, f, sx, 6, "stairs", label(f"{i + 1} 号楼梯", f"stairwell {i + 1}"))
                edge(f"{lid}-c{sx}", f"{lid}-stairs{i + 1}", "corridor")
                amenities.append(feature(f"{lid}-amenity-stairs{i + 1}", "amenity", point(sx, 6), category="stairs",
                                         level_id=lid, nav_node=f"{lid}-stairs{i + 1}", unit_ids=[f"{lid}-corridor"],
                                         name=label(f"{i + 1} 号楼梯", f"Stairwell {i + 1}")))
            amenities.append(feature(f"{lid}-amenity-lift", "amenity", point(spec["lift_x"], 13), category="elevator",
                                     level_id=lid, nav_node=f"{lid}-lift", unit_ids=[f"{lid}-corridor"],
                                     name=label("电梯", "Lifts")))
            # Toilets and water beside the lift lobby (south side).
            for cat, zh, en, dx in (("restroom", "卫生间", "Toilets", -4), ("drinkingfountain", "饮水处", "Drinking water", 4)):
                cx = spec["lift_x"] + dx
                uid = f"{lid}-{cat}"
                units.append(feature(uid, "unit", rect(cx - 4, 0, cx + 4, 8), level_id=lid, category=cat, name=label(zh, en)))
                n = node(f"{uid}-door", b, f, cx, 8, "door", label(zh, en))
                edge(f"{lid}-c{cx}", n, "door")
                amenities.append(feature(f"{uid}-amenity", "amenity", point(cx, 4), category=cat, level_id=lid, nav_node=n,
                                         unit_ids=[uid], name=label(zh, en), accessible=True))
            # Rooms.
            for (x, side, oid, zh, en, kind, room, dept, cat) in LAYOUT.get((b, f), []):
                y0, y1, dy = (12, 20, 12) if side == "N" else (0, 8, 8)
                uid = f"{lid}-unit-{oid}"
                units.append(feature(uid, "unit", rect(x - 4, y0, x + 4, y1), level_id=lid, category="room", name=label(zh, en)))
                door = node(f"{lid}-door-{oid}", b, f, x, dy, "door", label(zh, en))
                edge(f"{lid}-c{x}", door, "door")
                openings.append(feature(f"{lid}-opening-{oid}", "opening", line((x - 1, dy), (x + 1, dy)), level_id=lid,
                                        category="pedestrian", door={"type": "hinged", "automatic": False}))
                props = dict(name=label(zh, en), category=cat, anchor_id=f"anchor-{oid}", nav_node=door)
                if room:
                    props["room"] = room
                if dept:
                    props["department"] = dept
                if kind == "occupant":
                    anchors.append(feature(f"anchor-{oid}", "anchor", point(x, (y0 + y1) / 2), unit_id=uid))
                    occupants.append(feature(oid, "occupant", None, **props))
                else:
                    amenities.append(feature(f"amenity-{oid}", "amenity", point(x, (y0 + y1) / 2), category=cat,
                                             level_id=lid, nav_node=door, unit_ids=[uid], name=label(zh, en)))
            # Fixed points: a kiosk at every lift lobby, a QR marker at every stairwell door.
            kiosks.append(feature(f"K-{lid}", "kiosk", point(spec["lift_x"] + 1, 12), level_id=lid, kind="kiosk",
                                  nav_node=f"{lid}-lift", name=label(f"{spec['name']['zh']} {f} 楼电梯厅自助机", f"Kiosk, {spec['name']['en']} floor {f} lifts")))
            for i, sx in enumerate(spec["stairs"]):
                kiosks.append(feature(f"QR-{lid}-S{i + 1}", "kiosk", point(sx, 9), level_id=lid, kind="qr",
                                      nav_node=f"{lid}-c{sx}", name=label(f"{spec['name']['zh']} {f} 楼 {i + 1} 号楼梯口", f"{spec['name']['en']} floor {f}, stairwell {i + 1}")))
        # Vertical links: one lift shaft, two stairwells, floor by floor.
        for f in range(1, FLOORS):
            a, c = f"{b}-L{f}", f"{b}-L{f + 1}"
            edge(f"{a}-lift", f"{c}-lift", "elevator", seconds=6, wait_seconds=40, name=label("电梯", "lift"))
            for i in (1, 2):
                edge(f"{a}-stairs{i}", f"{c}-stairs{i}", "stairs", seconds=20)
        # Main entrance on floor 1 at the building's outer end (A west, B east).
        ex, cx = (spec["x0"], corridor_xs[0]) if b == "A" else (spec["x1"], corridor_xs[-1])
        e = node(f"{b}-entrance", b, 1, ex, 10, "entrance", label(f"{spec['name']['zh']}正门", f"{spec['name']['en']} main entrance"))
        edge(e, f"{b}-L1-c{cx}", "door")
        openings.append(feature(f"{b}-opening-entrance", "opening", line((ex, 8), (ex, 12)), level_id=f"{b}-L1",
                                category="pedestrian.principal", door={"type": "sliding", "automatic": True}))
        kiosks.append(feature(f"K-{b}-entrance", "kiosk", point(cx, 11), level_id=f"{b}-L1", kind="kiosk", nav_node=f"{b}-L1-c{cx}",
                              name=label(f"{spec['name']['zh']}正门自助机", f"Kiosk, {spec['name']['en']} entrance")))
    # Skybridge (floor 2) and covered walkway (floor 1) between A's east end and B's west end.
    for f, zh, en in ((2, "连廊", "skybridge"), (1, "连廊（一楼）", "covered walkway")):
        wa, wb = node(f"A-L{f}-bridge", "A", f, 80, 10, "corridor", label(zh, en)), node(f"B-L{f}-bridge", "B", f, 110, 10, "corridor", label(zh, en))
        edge(f"A-L{f}-c76", wa, "corridor")
        edge(wa, wb, "corridor", name=label(zh, en))
        edge(wb, f"B-L{f}-c114", "corridor")
        units.append(feature(f"bridge-L{f}", "unit", rect(80, 8, 110, 12), level_id=f"A-L{f}", category="walkway", name=label(zh, en)))

    files = {
        "venue": venue, "building": buildings, "level": levels, "unit": units, "opening": openings,
        "amenity": amenities, "occupant": occupants, "anchor": anchors, "kiosk": kiosks, "navigation": nav,
    }
    for name, feats in files.items():
        with open(os.path.join(OUT, f"{name}.geojson"), "w", encoding="utf-8") as fh:
            fh.write('{"type": "FeatureCollection", "features": [\n')
            fh.write(",\n".join(json.dumps(x, ensure_ascii=False) for x in feats))
            fh.write("\n]}\n")
    with open(os.path.join(OUT, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump({"version": "1.0.0", "created": "2026-11-25T00:00:00Z", "language": "zh-CN",
                   "generated_by": "maps/demo-hospital/generate.py", "extensions": ["clinicflow-navigation-1"]}, fh, indent=2)
        fh.write("\n")
    print({k: len(v) for k, v in files.items()})


if __name__ == "__main__":
    main()
