mod build;
mod cli;
mod context;
mod faults;
mod harness;
mod push;
mod secrets;
mod smoke;
