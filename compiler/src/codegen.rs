//! Cranelift code generation. Templates are code, instances are data: each
//! loop of a kernel becomes an instance loop over its compile-time table (the
//! table's address is a constant in the code) around an environment loop in
//! which SIMD lanes (`f64x2`, or `f32x4` under `precision = f32`) are environments. Results are accumulated into
//! memory as soon as they are computed, to keep live ranges short.
//! Elementary functions without a vector instruction are called per lane
//! through registered `extern "C"` symbols, the same functions the
//! interpreter uses, so JIT and interpreter agree bit for bit.

use crate::abi::lanes;
use crate::interp::{joule_atan2, joule_powi};
use crate::ir::{At, Cmp, Leaf, Op};
use crate::kernels::{cone, Dest, KernelIr, KernelKind, LoopIr};
use crate::model::{Precision, State};
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::entity::packed_option::ReservedValue;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, Endianness, FuncRef, Function, InstBuilder, MemFlagsData, Signature,
    Value,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module, ModuleReloc};
use joule_grammar::{Diagnostic, Severity};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A compiled kernel entry point: `(args: *const KernelArgs<T>, begin, end)`,
/// with `T` the scene's precision.
pub type KernelFn = unsafe extern "C" fn(*const u8, usize, usize);

/// A kernel function pointer that may be shared across threads (the code is
/// immutable once finalized and lives as long as its [`Jit`]).
#[derive(Clone, Copy)]
pub struct SharedKernel(pub KernelFn);

// SAFETY: finalized JIT code is read-only; kernels only touch the memory their
// arguments point to, so calls on disjoint environment ranges do not race.
unsafe impl Send for SharedKernel {}
unsafe impl Sync for SharedKernel {}

/// Elementary functions called per lane, by symbol name: each is the
/// interpreter's own definition ([`crate::ir::eval_unary`]), so both backends
/// compute the same bits.
type Unary = extern "C" fn(f64) -> f64;
macro_rules! lane_fn {
    ($name:ident, $op:ident) => {
        extern "C" fn $name(x: f64) -> f64 {
            crate::ir::eval_unary(Op::$op(0), x)
        }
    };
}
lane_fn!(joule_exp, Exp);
lane_fn!(joule_log, Log);
lane_fn!(joule_sin, Sin);
lane_fn!(joule_cos, Cos);
lane_fn!(joule_tan, Tan);
lane_fn!(joule_tanh, Tanh);
const UNARY_SYMBOLS: [(&str, Unary); 6] = [
    ("joule_exp", joule_exp),
    ("joule_log", joule_log),
    ("joule_sin", joule_sin),
    ("joule_cos", joule_cos),
    ("joule_tan", joule_tan),
    ("joule_tanh", joule_tanh),
];

/// Owns the JIT module's memory. After `finalize_definitions` the module is
/// never touched again except to free it on drop.
struct ModuleOwner(JITModule);

// SAFETY: the module is only used on the thread that drops the `Jit`, after all
// kernels have finished (kernels borrow the `Jit`); its code is immutable.
unsafe impl Send for ModuleOwner {}
unsafe impl Sync for ModuleOwner {}

/// The JIT module and the kernels compiled into it. Dropping it frees the code;
/// kernel pointers must not be used after that.
pub struct Jit {
    module: Option<ModuleOwner>,
    /// By [`KernelKind::index`] (an array: the step looks kernels up on
    /// every sweep).
    kernels: [Option<SharedKernel>; KernelKind::ALL.len()],
    /// Instance tables referenced by address from the code.
    _tables: Vec<Box<[u32]>>,
    _consts: Vec<Box<[f64]>>,
}

impl Drop for Jit {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the kernels are owned by this Jit and not used after drop.
            unsafe { m.0.free_memory() };
        }
    }
}

impl Jit {
    /// The compiled kernel of a kind.
    pub fn kernel(&self, kind: KernelKind) -> SharedKernel {
        self.kernels[kind.index()].expect("every kind of kernel is compiled")
    }
}

/// Code generation failed (a bug in Joule, not in the scene).
#[derive(Debug)]
pub struct CodegenError(pub String);

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code generation failed: {}", self.0)
    }
}

impl std::error::Error for CodegenError {}

impl From<CodegenError> for Diagnostic {
    /// Code generation failures are diagnostics like every other error, with
    /// no span: no place in the scene is at fault.
    fn from(e: CodegenError) -> Self {
        Diagnostic::without_span(Severity::Error, "joule::codegen", e.to_string())
            .with_help("this is a bug in Joule, not in the scene; please report it with the scene")
    }
}

fn err(e: impl std::fmt::Display) -> CodegenError {
    CodegenError(e.to_string())
}

/// Compiles kernels for the host (with its vector extensions). The IR of
/// every kernel is built first (declaring the imported symbols in the
/// module), then the kernels are compiled to machine code in parallel (one
/// Cranelift context per kernel, `compile_all`; each function's code does
/// not depend on the others, so the code is the same for any thread count),
/// and defined in the module in kernel order. Everything is finalized
/// before any kernel pointer is handed out.
pub fn compile(kernels: &[KernelIr], precision: Precision) -> Result<Jit, CodegenError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(err)?;
    // Cranelift's IR verifier checks what this generator emits: on in debug
    // builds (the tests), off in release, where it was a fifth of the ant's
    // code generation (143 -> 113 ms on one thread).
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    flags.set("enable_verifier", verify).map_err(err)?;
    flags.set("use_colocated_libcalls", "false").map_err(err)?;
    flags.set("is_pic", "false").map_err(err)?;
    let isa_builder = cranelift_native::builder().map_err(err)?;
    let isa = isa_builder
        .finish(settings::Flags::new(flags))
        .map_err(err)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, f) in UNARY_SYMBOLS {
        jb.symbol(name, f as *const u8);
    }
    jb.symbol("joule_atan2", joule_atan2 as *const u8);
    jb.symbol("joule_powi", joule_powi as *const u8);
    let mut module = JITModule::new(jb);
    let mut gen = Gen {
        tables: vec![],
        consts: vec![],
        p: Prec::new(precision),
    };
    let mut ids: Vec<(KernelKind, FuncId)> = vec![];
    let mut functions: Vec<(FuncId, Function)> = vec![];
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    for k in kernels {
        let ptr = module.target_config().pointer_type();
        let mut sig = Signature::new(module.target_config().default_call_conv);
        sig.params.extend([
            AbiParam::new(ptr),
            AbiParam::new(types::I64),
            AbiParam::new(types::I64),
        ]);
        let id = module
            .declare_function(&format!("joule_{}", k.kind.name()), Linkage::Local, &sig)
            .map_err(err)?;
        ctx.func.signature = sig;
        gen.function(&mut module, &mut ctx, &mut fctx, k)?;
        functions.push((id, std::mem::replace(&mut ctx.func, Function::new())));
        module.clear_context(&mut ctx);
        ids.push((k.kind, id));
    }
    let machine_code = compile_all(module.isa(), functions);
    for code in machine_code {
        let code = code?;
        module
            .define_function_bytes(code.id, code.alignment, &code.bytes, &code.relocs)
            .map_err(|e| CodegenError(format!("{e:?}")))?;
    }
    module.finalize_definitions().map_err(err)?;
    let mut kernels = [None; KernelKind::ALL.len()];
    for (kind, id) in ids {
        let p = module.get_finalized_function(id);
        // SAFETY: the function was defined with the KernelFn signature.
        kernels[kind.index()] = Some(SharedKernel(unsafe {
            std::mem::transmute::<*const u8, KernelFn>(p)
        }));
    }
    Ok(Jit {
        module: Some(ModuleOwner(module)),
        kernels,
        _tables: gen.tables,
        _consts: gen.consts,
    })
}

/// Compiles functions to machine code on all of rayon's threads, results in
/// the order given. Each thread takes the largest function not yet taken
/// (greedy longest-first scheduling: the ant's Hessian kernel alone is a
/// quarter of the work), so the threads finish close together.
fn compile_all(
    isa: &dyn TargetIsa,
    functions: Vec<(FuncId, Function)>,
) -> Vec<Result<MachineCode, CodegenError>> {
    let n = functions.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(functions[i].1.dfg.num_insts()));
    let inputs: Vec<Mutex<Option<(FuncId, Function)>>> =
        functions.into_iter().map(|f| Mutex::new(Some(f))).collect();
    let outputs: Vec<Mutex<Option<Result<MachineCode, CodegenError>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    rayon::scope(|s| {
        for _ in 0..rayon::current_num_threads().min(n) {
            s.spawn(|_| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (id, func) = inputs[i]
                        .lock()
                        .expect("not poisoned")
                        .take()
                        .expect("taken once");
                    *outputs[i].lock().expect("not poisoned") = Some(compile_one(isa, id, func));
                }
            });
        }
    });
    outputs
        .into_iter()
        .map(|o| {
            o.into_inner()
                .expect("not poisoned")
                .expect("every function compiled")
        })
        .collect()
}

/// One function's machine code and relocations (to the imported symbols).
fn compile_one(
    isa: &dyn TargetIsa,
    id: FuncId,
    func: Function,
) -> Result<MachineCode, CodegenError> {
    let mut ctx = Context::for_function(func);
    ctx.compile(isa, &mut ControlPlane::default())
        .map_err(|e| CodegenError(format!("{:?}", e.inner)))?;
    let code = ctx.compiled_code().expect("compiled just now");
    Ok(MachineCode {
        id,
        alignment: code.buffer.alignment as u64,
        bytes: code.code_buffer().to_vec(),
        relocs: code
            .buffer
            .relocs()
            .iter()
            .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
            .collect(),
    })
}

/// One kernel's machine code, before it is placed in the module.
struct MachineCode {
    id: FuncId,
    alignment: u64,
    bytes: Vec<u8>,
    relocs: Vec<ModuleReloc>,
}

struct Gen {
    tables: Vec<Box<[u32]>>,
    consts: Vec<Box<[f64]>>,
    p: Prec,
}

/// Types and sizes of one precision.
#[derive(Clone, Copy)]
struct Prec {
    /// Vector type (`f64x2` / `f32x4`).
    v: types::Type,
    /// Scalar type.
    s: types::Type,
    /// Lanes per vector.
    lanes: usize,
    /// Bytes per element.
    size: i64,
}

impl Prec {
    fn new(p: Precision) -> Self {
        match p {
            Precision::F64 => Prec {
                v: types::F64X2,
                s: types::F64,
                lanes: lanes(p),
                size: 8,
            },
            Precision::F32 => Prec {
                v: types::F32X4,
                s: types::F32,
                lanes: lanes(p),
                size: 4,
            },
        }
    }

    /// The constant `x` in every lane (rounded to f32 under f32).
    fn splat(&self, b: &mut FunctionBuilder, x: f64) -> Value {
        let c = if self.s == types::F32 {
            b.ins().f32const(x as f32)
        } else {
            b.ins().f64const(x)
        };
        b.ins().splat(self.v, c)
    }
}

/// Byte offset of pointer field `k` (0 = `x`) in [`KernelArgs`].
fn field(k: usize) -> i32 {
    8 * (1 + k as i32)
}

fn state_field(s: State) -> usize {
    match s {
        State::Pos => 0,
        State::Vel => 1,
        State::PrevPos => 2,
        State::PrevVel => 3,
        State::Held => HELD_X,
    }
}

fn d_state_field(s: State) -> usize {
    match s {
        State::Held => D_HELD_X,
        s => 12 + state_field(s),
    }
}

/// Field indices (see [`KernelArgs`]).
const PARAMS: usize = 4;
const CONTROLS: usize = 5;
const SEED: usize = 6;
const OUT_SEED: usize = 7;
const ENERGY: usize = 8;
const GRAD: usize = 9;
const HV: usize = 10;
const BLOCKS: usize = 11;
const D_PARAMS: usize = 16;
const D_CONTROLS: usize = 17;
const OUTPUTS: usize = 18;
const HELD_X: usize = 19;
const D_HELD_X: usize = 20;

impl Gen {
    fn function(
        &mut self,
        module: &mut JITModule,
        ctx: &mut Context,
        fctx: &mut FunctionBuilderContext,
        k: &KernelIr,
    ) -> Result<(), CodegenError> {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let mut calls: HashMap<&'static str, FuncRef> = HashMap::new();
        for (name, _) in UNARY_SYMBOLS {
            let mut sig = module.make_signature();
            sig.params.push(AbiParam::new(types::F64));
            sig.returns.push(AbiParam::new(types::F64));
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(err)?;
            calls.insert(name, module.declare_func_in_func(id, b.func));
        }
        for (name, second) in [("joule_atan2", types::F64), ("joule_powi", types::I32)] {
            let mut sig = module.make_signature();
            sig.params
                .extend([AbiParam::new(types::F64), AbiParam::new(second)]);
            sig.returns.push(AbiParam::new(types::F64));
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(err)?;
            calls.insert(name, module.declare_func_in_func(id, b.func));
        }
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let args = b.block_params(entry)[0];
        let begin = b.block_params(entry)[1];
        let end = b.block_params(entry)[2];
        let mem = MemFlagsData::trusted();
        let stride = b.ins().load(types::I64, mem, args, 0);
        let row_bytes = b.ins().imul_imm_s(stride, self.p.size);
        let fields: Vec<Value> = (0..crate::abi::POINTER_FIELDS)
            .map(|f| b.ins().load(types::I64, mem, args, field(f)))
            .collect();
        let env = Env {
            p: self.p,
            fields,
            row_bytes,
            begin,
            end,
            calls,
        };
        for lp in &k.loops {
            if lp.count > 0 && !lp.outputs.is_empty() {
                self.emit_loop(&mut b, &env, lp);
            }
        }
        b.ins().return_(&[]);
        b.finalize(module.target_config());
        Ok(())
    }

    fn emit_loop(&mut self, b: &mut FunctionBuilder, env: &Env, lp: &LoopIr) {
        let dofs: Box<[u32]> = lp.dofs.clone().into_boxed_slice();
        let ctls: Box<[u32]> = lp.controls.clone().into_boxed_slice();
        let consts: Box<[f64]> = lp.consts.clone().into_boxed_slice();
        let dof_addr = dofs.as_ptr() as i64;
        let ctl_addr = ctls.as_ptr() as i64;
        let const_addr = consts.as_ptr() as i64;
        self.tables.push(dofs);
        self.tables.push(ctls);
        self.consts.push(consts);

        // Instance loop: i in 0..count.
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_param(header, types::I64);
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().jump(header, &[BlockArg::Value(zero)]);
        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let more = b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, i, lp.count as i64);
        b.ins().brif(more, body, &[], exit, &[]);
        b.switch_to_block(body);
        b.seal_block(body);

        // Per instance: row base pointers for every (buffer, position) used, and constants.
        let mut bases: HashMap<(usize, At, bool), Value> = HashMap::new();
        let mut inst = Instance {
            i,
            dof_addr,
            ctl_addr,
            const_addr,
            lp,
            consts: HashMap::new(),
        };
        let mut base = |b: &mut FunctionBuilder,
                        inst: &mut Instance,
                        f: usize,
                        at: At,
                        control: bool|
         -> Value {
            *bases.entry((f, at, control)).or_insert_with(|| {
                let row = inst.row(b, at, control);
                let off = b.ins().imul(row, env.row_bytes);
                b.ins().iadd(env.fields[f], off)
            })
        };
        // Pre-compute bases (outside the environment loop).
        let mut leaf_base = HashMap::new();
        for op in lp.graph.nodes() {
            if let Op::Leaf(l) = op {
                let key = match *l {
                    Leaf::State(s, at) => Some((state_field(s), at, false)),
                    Leaf::Param(p) => Some((PARAMS, At::Row(p), false)),
                    Leaf::Control(at) => Some((CONTROLS, at, true)),
                    Leaf::Seed(at) => Some((SEED, at, false)),
                    Leaf::OutSeed(k) => Some((OUT_SEED, At::Row(k), false)),
                    Leaf::Const(_) => None,
                };
                if let Some((f, at, c)) = key {
                    let v = base(b, &mut inst, f, at, c);
                    leaf_base.insert(*l, v);
                } else if let Leaf::Const(k) = l {
                    let v = inst.constant(b, *k);
                    let v = if self.p.s == types::F32 {
                        b.ins().fdemote(types::F32, v)
                    } else {
                        v
                    };
                    let s = b.ins().splat(self.p.v, v);
                    leaf_base.insert(*l, s);
                }
            }
        }
        let w2 = (lp.dof_width * lp.dof_width) as i64;
        let mut dest_base = vec![];
        for (_, d) in &lp.outputs {
            let v = match *d {
                Dest::Energy => env.fields[ENERGY],
                Dest::Grad(at) => base(b, &mut inst, GRAD, at, false),
                Dest::Hv(at) => base(b, &mut inst, HV, at, false),
                Dest::DState(s, at) => base(b, &mut inst, d_state_field(s), at, false),
                Dest::DParam(p) => base(b, &mut inst, D_PARAMS, At::Row(p), false),
                Dest::DControl(at) => base(b, &mut inst, D_CONTROLS, at, true),
                Dest::Output(k) => base(b, &mut inst, OUTPUTS, At::Row(k), false),
                Dest::Block(k) => {
                    let r0 = b.ins().imul_imm_s(i, w2);
                    let r = b.ins().iadd_imm_s(r0, lp.block_base as i64 + k as i64);
                    let off = b.ins().imul(r, env.row_bytes);
                    b.ins().iadd(env.fields[BLOCKS], off)
                }
            };
            dest_base.push(v);
        }

        // A guarded Hessian-block loop's engagement flags (`LoopIr::engaged_row`).
        let engaged_base = lp.engaged_row(0).map(|r0| {
            let r = b.ins().imul_imm_s(i, w2);
            let r = b.ins().iadd_imm_s(r, r0 as i64);
            let off = b.ins().imul(r, env.row_bytes);
            b.ins().iadd(env.fields[BLOCKS], off)
        });

        // Environment loop: e in begin..end, one vector of lanes at a time.
        let eh = b.create_block();
        let eb = b.create_block();
        let ex = b.create_block();
        b.append_block_param(eh, types::I64);
        b.ins().jump(eh, &[BlockArg::Value(env.begin)]);
        b.switch_to_block(eh);
        let e = b.block_params(eh)[0];
        let more = b.ins().icmp(IntCC::UnsignedLessThan, e, env.end);
        b.ins().brif(more, eb, &[], ex, &[]);
        b.switch_to_block(eb);
        b.seal_block(eb);
        let eoff = b.ins().imul_imm_s(e, self.p.size);
        let vmem = MemFlagsData::new().with_notrap();
        let mut outs_at: HashMap<u32, Vec<usize>> = HashMap::new();
        for (k, (id, _)) in lp.outputs.iter().enumerate() {
            outs_at.entry(*id).or_default().push(k);
        }
        let next = b.create_block();
        let nodes = lp.graph.nodes();
        let mut vals: Vec<Value> = vec![Value::reserved_value(); nodes.len()];
        let emit = |b: &mut FunctionBuilder, n: usize, vals: &mut Vec<Value>| {
            vals[n] = match nodes[n] {
                Op::Leaf(l @ Leaf::Const(_)) => leaf_base[&l],
                Op::Leaf(l) => {
                    let addr = b.ins().iadd(leaf_base[&l], eoff);
                    b.ins().load(self.p.v, vmem, addr, 0)
                }
                op => emit_op(b, env, op, vals),
            };
        };
        // A guarded loop computes its guard's cone first and skips the rest
        // on a vector whose lanes all have it disengaged: stored results are
        // stored as zeros, accumulated ones have nothing to add.
        let mut early = vec![false; nodes.len()];
        if let Some(g) = lp.guard {
            for n in cone(&lp.graph, g.mask) {
                emit(b, n as usize, &mut vals);
                early[n as usize] = true;
            }
            let zero = self.p.splat(b, 0.0);
            let flag = engaged_base.map(|base| b.ins().iadd(base, eoff));
            let lanes = b
                .ins()
                .bitcast(self.p.v.as_int(), little(), vals[g.mask as usize]);
            let work = b.create_block();
            let skip = b.create_block();
            if g.zero_when {
                let all = b.ins().vall_true(lanes);
                b.ins().brif(all, skip, &[], work, &[]);
            } else {
                let any = b.ins().vany_true(lanes);
                b.ins().brif(any, work, &[], skip, &[]);
            }
            b.switch_to_block(skip);
            b.seal_block(skip);
            let stored = lp
                .outputs
                .iter()
                .enumerate()
                .filter(|(_, (_, d))| matches!(d, Dest::Block(_) | Dest::Output(_)))
                .map(|(k, _)| b.ins().iadd(dest_base[k], eoff))
                .collect::<Vec<_>>();
            for addr in stored.into_iter().chain(flag) {
                b.ins().store(vmem, zero, addr, 0);
            }
            b.ins().jump(next, &[]);
            b.switch_to_block(work);
            b.seal_block(work);
            if let Some(addr) = flag {
                let one = self.p.splat(b, 1.0);
                let (on, off) = if g.zero_when {
                    (zero, one)
                } else {
                    (one, zero)
                };
                let v = b.ins().bitselect(vals[g.mask as usize], on, off);
                b.ins().store(vmem, v, addr, 0);
            }
        }
        for n in 0..nodes.len() {
            if !early[n] {
                emit(b, n, &mut vals);
            }
            if let Some(ks) = outs_at.get(&(n as u32)) {
                let v = vals[n];
                for &k in ks {
                    let addr = b.ins().iadd(dest_base[k], eoff);
                    let accumulate = !matches!(lp.outputs[k].1, Dest::Block(_) | Dest::Output(_));
                    let out = if accumulate {
                        let old = b.ins().load(self.p.v, vmem, addr, 0);
                        b.ins().fadd(old, v)
                    } else {
                        v
                    };
                    b.ins().store(vmem, out, addr, 0);
                }
            }
        }
        b.ins().jump(next, &[]);
        b.switch_to_block(next);
        b.seal_block(next);
        let e_next = b.ins().iadd_imm_s(e, self.p.lanes as i64);
        b.ins().jump(eh, &[BlockArg::Value(e_next)]);
        b.seal_block(eh);
        b.switch_to_block(ex);
        b.seal_block(ex);
        let inext = b.ins().iadd_imm_s(i, 1);
        b.ins().jump(header, &[BlockArg::Value(inext)]);
        b.seal_block(header);
        b.switch_to_block(exit);
        b.seal_block(exit);
    }
}

struct Env {
    p: Prec,
    fields: Vec<Value>,
    row_bytes: Value,
    begin: Value,
    end: Value,
    calls: HashMap<&'static str, FuncRef>,
}

/// Per-instance table reads.
struct Instance<'a> {
    i: Value,
    dof_addr: i64,
    ctl_addr: i64,
    const_addr: i64,
    lp: &'a LoopIr,
    consts: HashMap<u32, Value>,
}

impl Instance<'_> {
    /// The row for a position: a table entry (instance-dependent) or a constant.
    fn row(&mut self, b: &mut FunctionBuilder, at: At, control: bool) -> Value {
        match at {
            At::Row(r) => b.ins().iconst(types::I64, r as i64),
            At::Slot(k) => {
                let (addr, width) = if control {
                    (self.ctl_addr, self.lp.control_width)
                } else {
                    (self.dof_addr, self.lp.dof_width)
                };
                let base = b.ins().iconst(types::I64, addr);
                let idx = b.ins().imul_imm_s(self.i, width as i64);
                let idx = b.ins().iadd_imm_s(idx, k as i64);
                let off = b.ins().imul_imm_s(idx, 4);
                let p = b.ins().iadd(base, off);
                let r = b.ins().load(types::I32, MemFlagsData::trusted(), p, 0);
                b.ins().uextend(types::I64, r)
            }
        }
    }

    fn constant(&mut self, b: &mut FunctionBuilder, k: u32) -> Value {
        if let Some(v) = self.consts.get(&k) {
            return *v;
        }
        let base = b.ins().iconst(types::I64, self.const_addr);
        let idx = b.ins().imul_imm_s(self.i, self.lp.const_width as i64);
        let idx = b.ins().iadd_imm_s(idx, k as i64);
        let off = b.ins().imul_imm_s(idx, 8);
        let p = b.ins().iadd(base, off);
        let v = b.ins().load(types::F64, MemFlagsData::trusted(), p, 0);
        self.consts.insert(k, v);
        v
    }
}

fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Calls an f64 function on each lane (widening and rounding f32 lanes).
fn per_lane(b: &mut FunctionBuilder, p: Prec, f: FuncRef, x: Value, y: Option<Value>) -> Value {
    let widen = |b: &mut FunctionBuilder, v: Value| {
        if p.s == types::F32 {
            b.ins().fpromote(types::F64, v)
        } else {
            v
        }
    };
    let mut out = None;
    for lane in 0..p.lanes as u8 {
        let xl = b.ins().extractlane(x, lane);
        let mut args = vec![widen(b, xl)];
        if let Some(y) = y {
            args.push(if b.func.dfg.value_type(y) == p.v {
                let yl = b.ins().extractlane(y, lane);
                widen(b, yl)
            } else {
                y
            });
        }
        let call = b.ins().call(f, &args);
        let r = b.inst_results(call)[0];
        let r = if p.s == types::F32 {
            b.ins().fdemote(types::F32, r)
        } else {
            r
        };
        out = Some(match out {
            None => b.ins().splat(p.v, r),
            Some(v) => b.ins().insertlane(v, r, lane),
        });
    }
    out.expect("at least one lane")
}

fn emit_op(b: &mut FunctionBuilder, env: &Env, op: Op, v: &[Value]) -> Value {
    let a = |i: u32| v[i as usize];
    let p = env.p;
    let mask = |b: &mut FunctionBuilder, m: Value| b.ins().bitcast(p.v, little(), m);
    match op {
        Op::Const(bits) => p.splat(b, f64::from_bits(bits)),
        Op::Neg(x) => b.ins().fneg(a(x)),
        Op::Add(x, y) => b.ins().fadd(a(x), a(y)),
        Op::Sub(x, y) => b.ins().fsub(a(x), a(y)),
        Op::Mul(x, y) => b.ins().fmul(a(x), a(y)),
        Op::Div(x, y) => b.ins().fdiv(a(x), a(y)),
        Op::Sqrt(x) => b.ins().sqrt(a(x)),
        Op::Abs(x) => b.ins().fabs(a(x)),
        Op::Exp(x) => per_lane(b, p, env.calls["joule_exp"], a(x), None),
        Op::Log(x) => per_lane(b, p, env.calls["joule_log"], a(x), None),
        Op::Sin(x) => per_lane(b, p, env.calls["joule_sin"], a(x), None),
        Op::Cos(x) => per_lane(b, p, env.calls["joule_cos"], a(x), None),
        Op::Tan(x) => per_lane(b, p, env.calls["joule_tan"], a(x), None),
        Op::Tanh(x) => per_lane(b, p, env.calls["joule_tanh"], a(x), None),
        Op::Atan2(y, x) => per_lane(b, p, env.calls["joule_atan2"], a(y), Some(a(x))),
        Op::Powi(x, k) => {
            let kk = b.ins().iconst(types::I32, k as i64);
            per_lane(b, p, env.calls["joule_powi"], a(x), Some(kk))
        }
        Op::Cmp(c, x, y) => {
            let cc = match c {
                Cmp::Lt => FloatCC::LessThan,
                Cmp::Le => FloatCC::LessThanOrEqual,
                Cmp::Eq => FloatCC::Equal,
                Cmp::Ne => FloatCC::NotEqual,
            };
            let m = b.ins().fcmp(cc, a(x), a(y));
            mask(b, m)
        }
        Op::And(x, y) => b.ins().band(a(x), a(y)),
        Op::Or(x, y) => b.ins().bor(a(x), a(y)),
        Op::Not(x) => b.ins().bnot(a(x)),
        Op::Select(c, x, y) => b.ins().bitselect(a(c), a(x), a(y)),
        Op::Leaf(_) => unreachable!("leaves are loaded"),
    }
}
