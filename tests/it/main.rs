mod harness;
mod smoke;
mod cli;
mod build;
mod push;
