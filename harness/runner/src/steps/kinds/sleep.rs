//! `sleep: 2s`: lets time pass (a wait the case, not the device, decides).

use std::time::Duration;

use serde::Deserialize;

use crate::case::fields::Span;
use crate::session::Session;
use crate::steps::{CaseContext, Step, StepFuture, Turn};

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
pub struct Sleep(Span);

impl Sleep {
    pub fn duration(&self) -> Duration {
        self.0 .0
    }
}

impl Step for Sleep {
    fn describe(&self) -> String {
        format!("sleep {:?}", self.duration())
    }

    fn run<'a>(&'a self, _: Turn, _: &'a mut CaseContext, _: &'a mut Session) -> StepFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(self.duration()).await;
            Ok(())
        })
    }
}
