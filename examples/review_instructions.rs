//! Answers every kubectl-shaped review of the example IAMRoles (the bodies of the floor harness,
//! `benches/admission_floor/corpus.rs`) a given number of times through `review::answer`, on one
//! endpoint, and nothing else. Run under `valgrind --tool=callgrind` twice, with 0 and with N
//! rounds (`make bench-instructions`): the difference over `N × reviews` is the instructions one
//! review costs — a figure that, unlike time on a shared machine, steal and neighbours do not move.
//!
//! Usage: `review_instructions <rounds> [validate|mutate]`. Reads the examples; no other I/O.

use std::env;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;

use infra_operator::admission::review::{self, Endpoint};
use infra_operator::governance::Guardrails;
use infra_operator::guardrails::{Config, Engine};

// The same bodies the floor harness sends; this program reads only the reviews.
#[allow(dead_code)]
#[path = "../benches/admission_floor/corpus.rs"]
mod corpus;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let rounds = args.first().and_then(|rounds| rounds.parse::<u64>().ok());
    let endpoint = match args.get(1).map(String::as_str) {
        None | Some("validate") => Some(Endpoint::Validate),
        Some("mutate") => Some(Endpoint::Mutate),
        Some(_) => None,
    };
    let (Some(rounds), Some(endpoint)) = (rounds, endpoint) else {
        eprintln!("usage: review_instructions <rounds> [validate|mutate]");
        return ExitCode::from(2);
    };
    let engine = Engine::new(Config::default()).expect("the built-in schemas compile");
    let guardrails = Guardrails::from(Arc::new(engine));
    let corpus = corpus::Corpus::from_examples().expect("the examples make reviews");
    for _ in 0..rounds {
        for review in &corpus.reviews {
            let answer = review::answer(&guardrails, endpoint, black_box(&review.body));
            black_box(answer.expect("an AdmissionReview"));
        }
    }
    println!("{} reviews answered", rounds * corpus.reviews.len() as u64);
    ExitCode::SUCCESS
}
