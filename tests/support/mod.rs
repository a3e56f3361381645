pub mod netns;
pub mod node;
pub mod ola;
pub mod olad;
pub mod proxy;
pub mod skip;
pub mod udp_proxy;
