//! The process engine's task init as a binary of its own: what the engine's tests and benchmarks run as
//! `SKEP_TASK_INIT` (the daemon runs its own binary, `skep`, with the same hidden argument).
#![forbid(unsafe_code)]

fn main() {
    match skep_worker::engine::process::run_if_requested() {
        Some(code) => std::process::exit(code),
        None => {
            eprintln!(
                "skep-task-init: the process engine's task init; run by the engine as `skep-task-init {} …`",
                skep_worker::engine::process::INIT_ARG
            );
            std::process::exit(2);
        }
    }
}
