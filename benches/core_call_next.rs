//! Core-only queue operations: no IO, no actors. How many issue + call-next pairs per second the
//! pure state machine makes with a realistic line in front of it, alone and with the views the
//! queue actor builds per commit (the touched tickets' places in line, the displays' board):
//! the cost per command should not grow with the line.

use clinicflow::domain::command::{Command, IssueTicket};
use clinicflow::domain::config::Hospital;
use clinicflow::domain::ids::{DisplayName, PatientId, PriorityClass, QueueId, RoomId, TicketId};
use clinicflow::domain::queue::QueueState;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const T0: i64 = 1_795_482_000_000;

fn issue(n: u64) -> Command {
    let class = if n % 10 == 0 { "elderly" } else { "normal" };
    Command::Issue(IssueTicket::walk_in(TicketId::parse(&format!("t{n}")).unwrap(), PatientId::parse(&format!("p{n}")).unwrap(), DisplayName::parse("张三丰").unwrap(), PriorityClass::parse(class).unwrap()))
}

fn bench(c: &mut Criterion) {
    let hospital = Hospital::demo();
    let mut group = c.benchmark_group("core");
    // internal-medicine: strict priority (no fairness rules); lab: interleave, ageing and the
    // overtake cap on (see config/demo-hospital.toml), so every command projects the line.
    for (queue, label) in [("internal-medicine", "issue_and_call_next"), ("lab", "issue_and_call_next_fair")] {
        let spec = hospital.queues[&QueueId::parse(queue).unwrap()].clone();
        let rooms: Vec<RoomId> = spec.rooms.keys().cloned().collect();
        for waiting in [50u64, 500, 5000] {
            // Steady state: each iteration issues one ticket and calls one, so the line stays `waiting` long.
            let mut s = QueueState::new(spec.clone());
            let mut n = 0u64;
            let mut now = T0;
            for _ in 0..waiting {
                n += 1;
                s.execute(&issue(n), now).unwrap();
            }
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new(label, waiting), |b| {
                b.iter(|| {
                    n += 1;
                    now += 1;
                    s.execute(&issue(n), now).unwrap();
                    let room = rooms[(n as usize) % rooms.len()].clone();
                    let d = s.execute(&Command::CallNext { room, caller: "bench".into() }, now).unwrap();
                    assert!(d.subject.is_some());
                })
            });
            // What the queue actor does per commit besides: the views of the tickets the commands
            // touched (the issued one's place in line, at the back) and the displays' board.
            group.bench_function(BenchmarkId::new(format!("{label}_with_views"), waiting), |b| {
                b.iter(|| {
                    n += 1;
                    now += 1;
                    let issued = s.execute(&issue(n), now).unwrap().subject.unwrap();
                    let view = s.ticket_view(&issued, now).unwrap();
                    assert!(view.position.is_some());
                    std::hint::black_box(s.board(now));
                    let room = rooms[(n as usize) % rooms.len()].clone();
                    let called = s.execute(&Command::CallNext { room, caller: "bench".into() }, now).unwrap().subject.unwrap();
                    std::hint::black_box(s.ticket_view(&called, now));
                    std::hint::black_box(s.board(now));
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
