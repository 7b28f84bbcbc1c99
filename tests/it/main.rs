mod build;
mod cli;
mod harness;
mod push;
mod secrets;
mod smoke;
mod faults;
