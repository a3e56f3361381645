//! Time per engine tick with 1, 64, 512 and 1024 universes fully patched, every channel
//! fading (target: 512 universes — 262,144 channels — under 1 ms per tick on one core).
//!
//! Each universe holds 128 four-channel fixtures (dimmer HTP + RGB LTP), all set by one cue
//! in a 60 s fade; the tick measured is mid-fade, so every channel interpolates, merges and
//! quantizes. A second cue list adds an HTP merge over the same dimmers.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rockontrol_engine::{Command, CompiledShow, FadeEngine};
use rockontrol_show::{
    Attribute, Channel, Cue, CueList, CueNumber, Fixture, FixtureProfile, Group, Mode, Playback,
    Show, Target, Universe, Value,
};

fn channel(name: &str, attribute: Attribute) -> Channel {
    Channel {
        name: name.into(),
        attribute,
        fine: None,
        default: 0,
        highlight: None,
        capabilities: vec![],
    }
}

fn full_show(universes: u16) -> Show {
    let profile = FixtureProfile {
        manufacturer: "Bench".into(),
        model: "RGB".into(),
        kind: Default::default(),
        channels: vec![
            channel("D", Attribute::Intensity),
            channel("R", Attribute::Red),
            channel("G", Attribute::Green),
            channel("B", Attribute::Blue),
        ],
        modes: vec![Mode {
            name: "4ch".into(),
            channels: vec!["D".into(), "R".into(), "G".into(), "B".into()],
        }],
        physical: None,
    };
    let mut show = Show::empty("bench");
    show.profiles.push(profile);
    let mut ids = Vec::new();
    for u in 1..=universes {
        show.universes.push(Universe {
            id: u,
            label: String::new(),
            outputs: vec![],
            input: None,
        });
        for f in 0..128u32 {
            let id = u32::from(u) * 1000 + f;
            ids.push(id);
            show.fixtures.push(Fixture {
                id,
                name: format!("F{id}"),
                profile: "Bench/RGB".into(),
                mode: "4ch".into(),
                universe: u,
                address: (f * 4 + 1) as u16,
                position: None,
            });
        }
    }
    show.groups.push(Group {
        name: "All".into(),
        fixtures: ids,
    });
    let cue = |level: f64, attrs: &[Attribute]| Cue {
        number: CueNumber(1000),
        label: String::new(),
        fade_in: 60.0,
        fade_out: None,
        delay: 0.0,
        follow: None,
        assert: false,
        values: [(
            Target::Group("All".into()),
            attrs
                .iter()
                .map(|a| (a.clone(), Value::Norm(level)))
                .collect(),
        )]
        .into_iter()
        .collect(),
    };
    show.cue_lists.push(CueList {
        name: "looks".into(),
        looped: false,
        cues: vec![cue(
            1.0,
            &[
                Attribute::Intensity,
                Attribute::Red,
                Attribute::Green,
                Attribute::Blue,
            ],
        )],
    });
    show.cue_lists.push(CueList {
        name: "sub".into(),
        looped: false,
        cues: vec![cue(0.5, &[Attribute::Intensity])],
    });
    for name in ["looks", "sub"] {
        show.playbacks.push(Playback {
            name: name.into(),
            cue_list: name.into(),
            master: 1.0,
            release_time: 0.0,
        });
    }
    show
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_tick");
    for universes in [1u16, 64, 512, 1024] {
        let show = full_show(universes);
        let compiled = CompiledShow::compile(&show).expect("bench show compiles");
        let channels = compiled.channels.len() as u64;
        let mut engine = FadeEngine::new(compiled);
        let mut state = engine.initial_state();
        for pb in ["looks", "sub"] {
            engine
                .apply(
                    &mut state,
                    &Command::Go {
                        playback: pb.into(),
                        fade: None,
                    },
                    0,
                )
                .expect("go");
        }
        let mut frame = engine.new_frame();
        group.throughput(Throughput::Elements(channels));
        group.bench_with_input(
            BenchmarkId::new("universes", universes),
            &universes,
            |b, _| {
                let mut t = 1000u64; // mid-fade: 1000 ticks into a 2640-tick fade
                b.iter(|| {
                    engine.advance(&mut state, t);
                    engine.render(&state, black_box(t), &mut frame);
                    t += 1;
                    black_box(&frame);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
