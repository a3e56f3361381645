pub mod ola;
