mod harness;
mod smoke;
mod cli;
