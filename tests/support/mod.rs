pub mod ola;
pub mod olad;
