//! The GPU compositor: layers in persistent textures, blended per output by a WGSL pass.
//!
//! Works on any wgpu device: Bevy's `RenderDevice`/`RenderQueue` in a live app (they wrap
//! the same `wgpu::Device` and `wgpu::Queue`), or a headless device of its own
//! ([`GpuContext::headless`]) for offline render and tests (lavapipe when there is no GPU).
//!
//! Textures are created once per layer slot and rewritten with `write_texture` each frame
//! (recreated only when a clip's size changes): never a new image per frame.

use std::sync::mpsc;

use rockontrol_show::BlendMode;

use crate::composite::{LayerParams, Placement, yuv_coefficients};
use crate::decode::{Frame, PixelFormat};

/// The format of output textures and of the views the compositor draws into.
pub const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
/// Bytes of a layer's uniform block (`Layer` in composite.wgsl).
const UNIFORM_BYTES: u64 = 80;

/// Why the GPU compositor could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter: {0}. Without a GPU install Mesa's lavapipe (mesa-vulkan-drivers) and set \
         VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
    )]
    NoAdapter(String),
    #[error("the GPU refused a device: {0}")]
    Device(String),
    #[error("reading the output back failed: {0}")]
    Readback(String),
    #[error("layer slot {slot} does not exist (the compositor has {slots})")]
    NoSlot { slot: usize, slots: usize },
    #[error("frame data of {got} bytes for a {width}×{height} {format:?} picture ({want} bytes)")]
    FrameSize {
        got: usize,
        want: usize,
        width: u32,
        height: u32,
        format: PixelFormat,
    },
    #[error("this compositor draws into a view it is given: it has no texture of its own to read")]
    NoTarget,
}

/// A wgpu device and its queue.
#[derive(Debug, Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter's name (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub adapter: String,
}

impl GpuContext {
    /// A device of its own, without a window (Vulkan: lavapipe on a machine without a GPU).
    pub fn headless() -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            flags: wgpu::InstanceFlags::empty(),
            ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
        });
        let adapter = futures_lite::future::block_on(
            instance.request_adapter(&wgpu::RequestAdapterOptions::default()),
        )
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let name = adapter.get_info().name;
        let (device, queue) =
            futures_lite::future::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("rockontrol media"),
                ..Default::default()
            }))
            .map_err(|e| GpuError::Device(e.to_string()))?;
        tracing::info!(adapter = %name, "media compositor on its own GPU device");
        Ok(GpuContext {
            device,
            queue,
            adapter: name,
        })
    }
}

/// A layer's persistent textures: RGBA in `main`, or NV12 as Y in `main` (R8) and CbCr in
/// `chroma` (RG8, half size; a 1×1 stand-in for RGBA).
struct Slot {
    main: wgpu::Texture,
    chroma: wgpu::Texture,
    size: (u32, u32),
    format: PixelFormat,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// The compositor's own output texture and its readback buffer (offline render, tests).
struct OwnTarget {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    readback: wgpu::Buffer,
    padded_row: u32,
}

/// One output's compositor: layer slots, the blend pipelines, and (unless it draws into a
/// texture it is given, as a live window's) a target texture with a readback buffer.
pub struct OutputCompositor {
    width: u32,
    height: u32,
    target: Option<OwnTarget>,
    layout: wgpu::BindGroupLayout,
    pipelines: [wgpu::RenderPipeline; 4],
    slots: Vec<Slot>,
}

impl std::fmt::Debug for OutputCompositor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputCompositor")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// One layer to draw: the slot holding its picture, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerDraw {
    pub slot: usize,
    pub params: LayerParams,
}

fn blend_state(mode: BlendMode) -> wgpu::BlendState {
    use wgpu::{BlendComponent as C, BlendFactor as F, BlendOperation as Op};
    let color = |src, dst| C {
        src_factor: src,
        dst_factor: dst,
        operation: Op::Add,
    };
    let color = match mode {
        BlendMode::Normal => color(F::SrcAlpha, F::OneMinusSrcAlpha),
        BlendMode::Add => color(F::SrcAlpha, F::One),
        BlendMode::Multiply => color(F::Zero, F::Src),
        BlendMode::Screen => color(F::One, F::OneMinusSrc),
    };
    // The output stays opaque.
    let alpha = C {
        src_factor: F::Zero,
        dst_factor: F::One,
        operation: Op::Add,
    };
    wgpu::BlendState { color, alpha }
}

fn mode_index(mode: BlendMode) -> usize {
    match mode {
        BlendMode::Normal => 0,
        BlendMode::Add => 1,
        BlendMode::Multiply => 2,
        BlendMode::Screen => 3,
    }
}

impl OutputCompositor {
    /// A `width`×`height` output with `slots` layer slots and a texture of its own.
    pub fn new(gpu: &GpuContext, width: u32, height: u32, slots: usize) -> Self {
        let mut c = Self::without_target(gpu, width, height, slots);
        c.target = Some(OwnTarget::new(gpu, width, height));
        c
    }

    /// A compositor that draws only into views it is given ([`OutputCompositor::render_into`]):
    /// a live output draws straight into the texture its window shows.
    pub fn without_target(gpu: &GpuContext, width: u32, height: u32, slots: usize) -> Self {
        let device = &gpu.device;
        let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("media layer"),
            entries: &[
                texture_entry(0),
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                texture_entry(2),
            ],
        });
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("media composite"),
            source: wgpu::ShaderSource::Wgsl(include_str!("composite.wgsl").into()),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("media composite"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |mode: BlendMode| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some("media composite"),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &shader,
                    entry_point: Some("vs"),
                    compilation_options: Default::default(),
                    buffers: &[],
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &shader,
                    entry_point: Some("fs"),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: FORMAT,
                        blend: Some(blend_state(mode)),
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let pipelines = [
            pipeline(BlendMode::Normal),
            pipeline(BlendMode::Add),
            pipeline(BlendMode::Multiply),
            pipeline(BlendMode::Screen),
        ];
        let mut c = OutputCompositor {
            width,
            height,
            target: None,
            layout,
            pipelines,
            slots: Vec::new(),
        };
        for _ in 0..slots {
            let slot = c.make_slot(gpu, 1, 1, PixelFormat::Rgba);
            c.slots.push(slot);
        }
        c
    }

    /// Layer slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The output texture of its own (for a preview); `None` when it draws into given views.
    pub fn texture(&self) -> Option<&wgpu::Texture> {
        self.target.as_ref().map(|t| &t.texture)
    }

    fn make_slot(&self, gpu: &GpuContext, width: u32, height: u32, format: PixelFormat) -> Slot {
        let texture = |label, width, height, format| {
            gpu.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        };
        let (main, chroma) = match format {
            PixelFormat::Rgba => (
                texture("media layer", width, height, FORMAT),
                texture(
                    "media layer (no chroma)",
                    1,
                    1,
                    wgpu::TextureFormat::Rg8Unorm,
                ),
            ),
            PixelFormat::Nv12 { .. } => (
                texture("media layer Y", width, height, wgpu::TextureFormat::R8Unorm),
                texture(
                    "media layer CbCr",
                    width.div_ceil(2),
                    height.div_ceil(2),
                    wgpu::TextureFormat::Rg8Unorm,
                ),
            ),
        };
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("media layer"),
            size: UNIFORM_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let view = main.create_view(&wgpu::TextureViewDescriptor::default());
        let chroma_view = chroma.create_view(&wgpu::TextureViewDescriptor::default());
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("media layer"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&chroma_view),
                },
            ],
        });
        Slot {
            main,
            chroma,
            size: (width, height),
            format,
            uniform,
            bind_group,
        }
    }

    /// Writes an RGBA8 picture into `slot`'s texture (recreated only if the size changed).
    pub fn upload(
        &mut self,
        gpu: &GpuContext,
        slot: usize,
        width: u32,
        height: u32,
        rgba: &[u8],
    ) -> Result<(), GpuError> {
        self.upload_as(gpu, slot, width, height, PixelFormat::Rgba, rgba)
    }

    /// Writes a decoded frame (RGBA or NV12) into `slot`'s textures.
    pub fn upload_frame(
        &mut self,
        gpu: &GpuContext,
        slot: usize,
        frame: &Frame,
    ) -> Result<(), GpuError> {
        self.upload_as(
            gpu,
            slot,
            frame.width,
            frame.height,
            frame.format,
            &frame.data,
        )
    }

    /// Writes a picture in `format` into `slot`'s persistent textures (recreated only when
    /// the size or the format changes): RGBA as it is, NV12 as its Y and CbCr planes, for
    /// the shader to convert.
    pub fn upload_as(
        &mut self,
        gpu: &GpuContext,
        slot: usize,
        width: u32,
        height: u32,
        format: PixelFormat,
        data: &[u8],
    ) -> Result<(), GpuError> {
        let slots = self.slots.len();
        if slot >= slots {
            return Err(GpuError::NoSlot { slot, slots });
        }
        let want = format.frame_bytes(width, height);
        if data.len() != want || width == 0 || height == 0 {
            return Err(GpuError::FrameSize {
                got: data.len(),
                want,
                width,
                height,
                format,
            });
        }
        let s = &self.slots[slot];
        if s.size != (width, height) || s.format != format {
            tracing::debug!(slot, width, height, ?format, "media layer textures made");
            self.slots[slot] = self.make_slot(gpu, width, height, format);
        }
        let s = &self.slots[slot];
        let write = |texture: &wgpu::Texture, bytes: &[u8], w: u32, h: u32, texel: u32| {
            gpu.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                bytes,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(w * texel),
                    rows_per_image: Some(h),
                },
                wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            );
        };
        match format {
            PixelFormat::Rgba => write(&s.main, data, width, height, 4),
            PixelFormat::Nv12 { .. } => {
                let luma = (width * height) as usize;
                write(&s.main, &data[..luma], width, height, 1);
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                write(&s.chroma, &data[luma..], cw, ch, 2);
            }
        }
        Ok(())
    }

    /// Composites `layers` (bottom first) onto opaque black, into its own texture.
    pub fn render(&mut self, gpu: &GpuContext, layers: &[LayerDraw]) -> Result<(), GpuError> {
        let target = self.target.as_ref().ok_or(GpuError::NoTarget)?;
        let view = target.view.clone();
        self.render_into(gpu, layers, &view)
    }

    /// Composites `layers` (bottom first) onto opaque black into `view` (a [`FORMAT`] view
    /// of a `width`×`height` texture with `RENDER_ATTACHMENT` use): the texture a live
    /// output's window shows, with no copy through memory.
    pub fn render_into(
        &mut self,
        gpu: &GpuContext,
        layers: &[LayerDraw],
        view: &wgpu::TextureView,
    ) -> Result<(), GpuError> {
        for l in layers {
            let slots = self.slots.len();
            let slot = self.slots.get(l.slot).ok_or(GpuError::NoSlot {
                slot: l.slot,
                slots,
            })?;
            let p = Placement::new(&l.params.transform, self.width, self.height);
            let (yuv_flag, [y0, ys, cs], [r_cr, g_cb, g_cr, b_cb]) = match slot.format {
                PixelFormat::Rgba => (0.0, [0.0; 3], [0.0; 4]),
                PixelFormat::Nv12 { yuv } => {
                    let (range, matrix) = yuv_coefficients(yuv);
                    (1.0, range, matrix)
                }
            };
            let values: [f32; 20] = [
                p.center[0],
                p.center[1],
                p.size[0],
                p.size[1],
                p.cos_sin[0],
                p.cos_sin[1],
                l.params.opacity,
                mode_index(l.params.blend) as f32,
                p.crop[0],
                p.crop[1],
                p.crop[2],
                p.crop[3],
                yuv_flag,
                y0,
                ys,
                cs,
                r_cr,
                g_cb,
                g_cr,
                b_cb,
            ];
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            gpu.queue.write_buffer(&slot.uniform, 0, &bytes);
        }
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("media composite"),
            });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("media composite"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            for l in layers {
                pass.set_pipeline(&self.pipelines[mode_index(l.params.blend)]);
                pass.set_bind_group(0, &self.slots[l.slot].bind_group, &[]);
                pass.draw(0..3, 0..1);
            }
        }
        gpu.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Copies its own output texture back to memory: RGBA8, rows tightly packed.
    pub fn read_back(&self, gpu: &GpuContext) -> Result<Vec<u8>, GpuError> {
        let target = self.target.as_ref().ok_or(GpuError::NoTarget)?;
        target.read_back(gpu, self.width, self.height)
    }
}

impl OwnTarget {
    fn new(gpu: &GpuContext, width: u32, height: u32) -> Self {
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("media output"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let padded_row = (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("media readback"),
            size: u64::from(padded_row) * u64::from(height),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        OwnTarget {
            texture,
            view,
            readback,
            padded_row,
        }
    }

    fn read_back(&self, gpu: &GpuContext, width: u32, height: u32) -> Result<Vec<u8>, GpuError> {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("media readback"),
            });
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &self.texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &self.readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(self.padded_row),
                    rows_per_image: Some(height),
                },
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
        gpu.queue.submit([encoder.finish()]);
        let slice = self.readback.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let row = (width * 4) as usize;
        let mut out = Vec::with_capacity(row * height as usize);
        {
            let mapped = slice.get_mapped_range();
            for y in 0..height as usize {
                let start = y * self.padded_row as usize;
                out.extend_from_slice(&mapped[start..start + row]);
            }
        }
        self.readback.unmap();
        Ok(out)
    }
}
