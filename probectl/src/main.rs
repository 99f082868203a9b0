//! `probectl`: see [`probectl::ctl`].

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use probectl::ctl::{self, Ctl};

fn main() -> ExitCode {
    let ctl = Ctl::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ctl::run(&ctl, causeway_service::now_ms())) {
        Ok(text) => {
            // A closed pipe (`probectl status | head`) is not an error worth a message.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
